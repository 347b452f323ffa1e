"""The file commands as a person meets them, in processes of their own: an interrupted get
says how to go on and no node logs an error for it; a get keeps a file that is already
there unless --force; put says a directory is one; --node given a URL or an API's port
says exactly that; an empty file reads well."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CLI, Processes, api_url, eventually, run_cli

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(180)]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def put(path: Path, node: str) -> None:
    done = run_cli("put", str(path), "--node", node, timeout=120)
    assert done.code == 0, done.stderr


def test_an_interrupted_get_says_how_to_go_on_and_no_node_logs_an_error(
    procs: Processes, tmp_path: Path
) -> None:
    first = procs.start()
    second = procs.start(join=first.address)
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(40):
            out.write(os.urandom(8 << 20))  # 320 MiB: a get takes a moment even here
    put(source, first.address)
    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    part = target.with_name("big.bin.part")
    getting = subprocess.Popen(
        [*CLI, "get", "big.bin", "-o", str(target), "--node", first.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: Ctrl-C raises KeyboardInterrupt (a child of a test inherits
        # whatever SIGINT disposition the runner has).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        eventually(lambda: _has_bytes(part), 60, interval=0.01)
        getting.send_signal(signal.SIGINT)
        _, stderr = getting.communicate(timeout=30)
    finally:
        if getting.poll() is None:
            getting.kill()
    assert getting.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert str(part) in lines[0] and "run the same get again" in lines[0]

    again = run_cli("get", "big.bin", "-o", str(target), "--node", first.address, "--json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["resumed_chunks"] >= 1
    assert target.read_bytes() == source.read_bytes() and not part.exists()
    for node in (first, second):
        log = node.log()
        assert "ERROR" not in log and "Traceback" not in log, log[-2000:]


def _has_bytes(path: Path) -> None:
    # Blocks on disk, not the size: the file is sized for the whole download at once.
    written = path.stat().st_blocks * 512 if path.exists() else 0
    assert written >= 4 << 20, f"only {written} bytes written to {path} yet"


def test_a_get_keeps_a_file_that_is_there_unless_forced(procs: Processes, tmp_path: Path) -> None:
    node = procs.start()
    source = tmp_path / "notes.txt"
    source.write_text("from the network\n")
    put(source, node.address)
    mine = tmp_path / "mine" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("my own notes\n")
    for where in (["-o", str(mine)], ["-o", str(mine.parent)]):
        refused = run_cli("get", "notes.txt", *where, "--node", node.address)
        assert refused.code == 2 and len(refused.stderr_lines) == 1, refused.stderr
        assert "exists" in refused.stderr and "--force" in refused.stderr
        assert mine.read_text() == "my own notes\n"
    forced = run_cli("get", "notes.txt", "-o", str(mine), "--force", "--node", node.address)
    assert forced.code == 0, forced.stderr
    assert mine.read_text() == "from the network\n"


def test_put_of_an_empty_directory_stores_a_folder_that_gets_back_empty(
    procs: Processes, tmp_path: Path
) -> None:
    node = procs.start()
    folder = tmp_path / "holiday"
    folder.mkdir()
    done = run_cli("put", str(folder), "--node", node.address)
    assert done.code == 0, done.stderr
    back = tmp_path / "back"
    got = run_cli("get", "holiday", "-o", str(back), "--node", node.address)
    assert got.code == 0, got.stderr
    assert back.is_dir() and not any(back.iterdir())


def test_node_given_a_url_or_an_api_port_says_so(procs: Processes) -> None:
    node = procs.start(extra=["--api", "127.0.0.1:0"])
    url = eventually(lambda: api_url(node.log()), 10)
    for given, says in ((url, "not a URL"), (url.removeprefix("http://"), "is a REST API")):
        done = run_cli("ls", "--node", given)
        assert done.code == 2 and len(done.stderr_lines) == 1, done.stderr
        assert says in done.stderr and "serving at" in done.stderr, done.stderr


def test_an_empty_file_round_trips_and_reads_well(procs: Processes, tmp_path: Path) -> None:
    node = procs.start()
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    put(empty, node.address)
    back = tmp_path / "back.txt"
    got = run_cli("get", "empty.txt", "-o", str(back), "--node", node.address)
    assert got.code == 0, got.stderr
    assert got.stdout.strip() == f"got empty.txt (an empty file) into {back}"
    assert back.read_bytes() == b""


def test_the_demo_banner_fits_80_columns_and_its_commands_work(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    demo = subprocess.Popen(
        [*CLI, "demo", "--nodes", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops every node"):
                break
        banner = "\n".join(lines)
        assert all(len(line) <= 80 for line in lines), banner
        commands = [line.strip() for line in lines if line.startswith("  chordshare ")]
        assert len(commands) == 5, banner
        ring = commands[0].split()
        assert ring[:2] == ["chordshare", "ring"]
        walked = run_cli(*ring[1:], "--json")
        assert walked.code == 0, walked.stderr
        nodes = json.loads(walked.stdout)["nodes"]
        assert len(nodes) == 3
        for node in nodes:  # every address whole in the ring's table, none cut short
            assert node["address"] in banner, banner
        listed = run_cli(*commands[1].split()[1:], "--json")
        assert {f["name"] for f in json.loads(listed.stdout)["files"]} >= {"welcome.txt"}
        dashboards = [line.strip() for line in lines if line.startswith("  http://")]
        assert len(dashboards) == 3 and all("/#token=" in url for url in dashboards), banner
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.communicate(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
    assert demo.returncode == 0


def test_a_node_asked_to_leave_hands_over_and_exits_by_itself(
    procs: Processes, tmp_path: Path
) -> None:
    first = procs.start()
    second = procs.start(join=first.address)
    source = tmp_path / "kept.txt"
    source.write_text("still here after the leave\n")
    put(source, first.address)
    done = run_cli("leave", "--node", second.address)
    assert done.code == 0, done.stderr
    assert second.popen.wait(30) == 0, second.log()
    assert "stopping: it left the ring" in second.log()
    assert first.running()
    got = run_cli("get", "kept.txt", "-o", str(tmp_path / "got.txt"), "--node", first.address)
    assert got.code == 0, got.stderr
    assert (tmp_path / "got.txt").read_text() == "still here after the leave\n"
