"""`chordshare console` driven as a user drives it: a real node process, and the console in
a pseudo-terminal (so that readline runs, with its history and tab completion), commands
typed and answers read up to the next prompt. Every wait is a select() with a deadline."""

from __future__ import annotations

import fcntl
import os
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chordshare.chord.messages import NodeRef
from chordshare.faces.console import ChordConsole

pytestmark = [pytest.mark.processes, pytest.mark.timeout(60)]

CLI = (sys.executable, "-m", "chordshare.faces.cli")
PROMPT = "chordshare> "
READY = re.compile(r"node (\d+) serving at (\S+?),")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
START_DEADLINE = 20.0
ANSWER_DEADLINE = 10.0


def start_node(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A one-node ring without a REST API; its address from the "serving at" line."""
    log_path = workdir / "node.log"
    with log_path.open("wb") as log:
        node = subprocess.Popen(
            [*CLI, "node", "--bind", "127.0.0.1:0", "--api", "off", "--data-dir", str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + START_DEADLINE
    while True:
        found = READY.search(log_path.read_text(errors="replace"))
        if found:
            return node, found[2]
        if node.poll() is not None or time.monotonic() > deadline:
            node.kill()
            raise AssertionError(f"node did not start:\n{log_path.read_text()}")
        # the node writes its log file, which select() cannot wait on: poll it
        select.select([], [], [], 0.05)


class Terminal:
    """The console on the slave side of a pty; we read and type on the master side."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        # 40 rows x 120 columns: readline and Rich read the size of the terminal
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True
        )
        os.close(slave)
        self.text = ""
        self.seen = 0  # where the answer to the next command starts

    def _read(self, deadline: float) -> bool:
        """Read what is there within the deadline; False at the deadline or at the end."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.master], [], [], remaining)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the console exited and closed the terminal
            return False
        if not data:
            return False
        self.text += ANSI.sub("", data.decode(errors="replace"))
        return True

    def expect(self, wanted: str, timeout: float = ANSWER_DEADLINE) -> str:
        """Everything since the last answer up to `wanted`; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.text.find(wanted, self.seen)
            if at >= 0:
                answer = self.text[self.seen : at]
                self.seen = at + len(wanted)
                return answer
            if not self._read(deadline):
                raise AssertionError(
                    f"no {wanted!r} within {timeout} s; the terminal shows:\n{self.text[-3000:]}"
                )

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def ask(self, line: str) -> str:
        """Type a command and return its answer (the text before the next prompt), with
        runs of white space made one space: Rich wraps long lines at the terminal's width."""
        self.type(line + "\n")
        return " ".join(self.expect(PROMPT).split())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[str]:
    process, address = start_node(tmp_path)
    try:
        yield address
    finally:
        process.kill()
        process.wait(10)


def test_console_session(node: str, tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = {
        **os.environ,
        "TERM": "dumb",
        "COLUMNS": "120",
        "LINES": "40",
        "CHORDSHARE_HISTORY": str(history),
    }
    env.pop("NO_COLOR", None)
    content = os.urandom(3000) + b"the quarterly report\n"
    (tmp_path / "report-q3.txt").write_bytes(content)
    term = Terminal([*CLI, "console", "--node", node], env, tmp_path)
    try:
        term.expect(PROMPT, timeout=START_DEADLINE)

        listed = term.ask("help")
        for command in ("fingers", "predecessor", "successor", "health", "ring", "lookup"):
            assert command in listed
        for command in ("files", "all", "put", "get", "search", "rm", "leave", "quit"):
            assert command in listed
        assert "successor list" in term.ask("help successor")

        assert node in term.ask("successor")
        assert "SERVING" in term.ask("health")
        assert "ring of 1 node(s)" in term.ask("health")

        assert "stored report-q3.txt" in term.ask("put report-q3.txt")
        assert "report-q3.txt" in term.ask("files")

        # The owner publishes the name's words to the index just after the put: poll.
        deadline = time.monotonic() + ANSWER_DEADLINE
        while "1 file(s) matching" not in (found := term.ask("search report q3")):
            assert time.monotonic() < deadline, found
        assert "report-q3.txt" in found

        # Tab completes a file name from the network listing.
        term.type("get rep\t")
        term.expect("report-q3.txt")
        got = term.ask(" copy.bin")
        assert "got report-q3.txt" in got, got
        assert (tmp_path / "copy.bin").read_bytes() == content

        assert "removed report-q3.txt" in term.ask("rm report-q3.txt")
        term.type("get report-q3.txt again.bin\n")
        failed = term.expect(PROMPT)
        assert "no file named" in failed
        assert len([line for line in failed.splitlines() if "error" in line]) == 1, failed
        assert not (tmp_path / "again.bin").exists()
        assert "unknown command" in term.ask("frobnicate")

        assert node in term.ask("ring")  # the console goes on after errors

        # Tab completes a command name.
        term.type("suc\t")
        term.expect("successor")
        assert node in term.ask("")

        term.type("quit\n")
        assert term.process.wait(ANSWER_DEADLINE) == 0
        saved = history.read_text()
        assert "put report-q3.txt" in saved
        assert "successor" in saved
    finally:
        term.close()


def test_console_goes_on_when_the_node_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    env = {**os.environ, "TERM": "dumb", "CHORDSHARE_HISTORY": str(tmp_path / "history")}
    term = Terminal([*CLI, "console", "--node", address], env, tmp_path)
    try:
        assert "cannot reach" in term.expect(PROMPT, timeout=START_DEADLINE)
        term.type("ring\n")
        answer = term.expect(PROMPT)
        assert "cannot reach" in answer
        assert len([line for line in answer.splitlines() if "error" in line]) == 1, answer
        assert "usage: lookup NAME" in term.ask("lookup")
        term.type("\x04")  # Ctrl-D
        assert term.process.wait(ANSWER_DEADLINE) == 0
    finally:
        term.close()


def test_console_commands_share_the_owners_they_met(node: str) -> None:
    """Each command makes a FileClient of its own; they share one route cache."""
    console = ChordConsole(node)
    try:
        _, first = console._run(console._connected())
        first.routes.learn([NodeRef(7, "127.0.0.1:7")])
        _, second = console._run(console._connected())
        assert second is not first and NodeRef(7, "127.0.0.1:7") in second.routes.nodes()
    finally:
        console.close()


def test_console_gets_a_file_inside_a_folders_pack(node: str, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_bytes(b"alpha " * 500)
    (folder / "b.txt").write_bytes(b"beta")
    put = subprocess.run(
        [*CLI, "put", str(folder), "-n", node], capture_output=True, text=True, timeout=30
    )
    assert put.returncode == 0, put.stderr
    env = {**os.environ, "TERM": "dumb", "CHORDSHARE_HISTORY": str(tmp_path / "history")}
    term = Terminal([*CLI, "console", "--node", node], env, tmp_path)
    try:
        term.expect(PROMPT, timeout=START_DEADLINE)
        got = term.ask("get docs/sub/a.txt one.txt")
        assert "got docs/sub/a.txt" in got, got
        assert (tmp_path / "one.txt").read_bytes() == b"alpha " * 500
        assert "exists: give --force" in term.ask("get docs/sub/a.txt one.txt")
        assert "got docs/sub/a.txt" in term.ask("get docs/sub/a.txt one.txt --force")
        assert "no file named" in term.ask("get docs/sub/none.txt none.txt")
        assert not (tmp_path / "none.txt").exists()
        # The folder's manifest alone: its pack is part of it, not a file of its own.
        for listing in ("files", "all"):
            shown = term.ask(listing)
            assert "1 file(s)" in shown and "chordshare-pack" not in shown, shown
    finally:
        term.close()
