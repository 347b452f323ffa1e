"""A harness for system tests: chordshare node processes on loopback, driven as a user would.

`Processes` starts `python -m chordshare.faces.cli node ...` processes, waits for each one's
"node <id> serving at <addr>" line, and sends them signals (kill -9, -STOP, -CONT, TERM).
Its `cleanup` kills every process it started, frozen ones included; test modules call it
from a fixture finalizer, so a failing test leaves nothing running. As a second line of
defence every node asks the kernel to kill it if the thread that started it dies
(PR_SET_PDEATHSIG), which covers a test runner that is itself killed.

`run_cli` and `cli_json` run the read commands (`info`, `ring`, `lookup`) in a process of
their own; `walk_ring` and `lookup_owner` ask in-process through NodeClient, which is much
cheaper when a test polls many nodes. `eventually` retries assertions until a deadline:
waiting is always a bounded polling loop, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from chordshare.chord.messages import NodeRef
from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient

T = TypeVar("T")

HOST = "127.0.0.1"
CLI = (sys.executable, "-m", "chordshare.faces.cli")
READY = re.compile(r"node (\d+) serving at (\S+?),")
API_LINE = re.compile(r"api at (http://\S+)")
START_DEADLINE = 20.0  # many processes starting at once on two cores are slow to import
CLI_DEADLINE = 20.0
PR_SET_PDEATHSIG = 1


class CliError(AssertionError):
    """A CLI call that was expected to succeed failed (an AssertionError, so `eventually`
    retries it)."""


def api_url(log: str) -> str:
    """The REST API's URL from a node's log (AssertionError until it is printed)."""
    found = API_LINE.search(log)
    assert found, "no 'api at' line yet"
    return found[1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def eventually(check: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Call `check` until it returns without an AssertionError, and return its value.

    At the deadline the last AssertionError is raised again, saying how long we waited.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return check()
        except AssertionError as err:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"still failing after {timeout:.1f} s ({attempts} attempts): {err}"
                ) from err
        time.sleep(min(interval, remaining))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition until it holds; AssertionError naming `what` at the deadline."""

    def check() -> None:
        assert condition(), f"waiting for {what}"

    eventually(check, timeout)


@dataclass(frozen=True, slots=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(*args: str, timeout: float = CLI_DEADLINE) -> CliResult:
    """Run one `chordshare` command to its end."""
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def cli_json(*args: str, timeout: float = CLI_DEADLINE) -> Any:
    """Run a read command with --json and decode its answer; CliError if it failed."""
    result = run_cli(*args, "--json", timeout=timeout)
    if result.code != 0:
        raise CliError(f"chordshare {' '.join(args)} exited {result.code}: {result.stderr}")
    return json.loads(result.stdout)


def parallel(call: Callable[[T], Any], items: Iterable[T], workers: int = 4) -> list[Any]:
    """`call` on every item from a few threads (CLI calls spend their time starting Python,
    so a few at once use both cores); results in the order of the items."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(call, items))


def cli_ring(address: str) -> list[int]:
    """Ids along the ring walked from the node at address, by `chordshare ring`."""
    return [n["id"] for n in cli_json("ring", "--node", address)["nodes"]]


def cli_info(address: str) -> dict[str, Any]:
    info: dict[str, Any] = cli_json("info", "--node", address)
    return info


def cli_lookup(address: str, key_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = cli_json("lookup", "--id", str(key_id), "--node", address)
    return answer


def rotated(ids: Sequence[int], start: int) -> list[int]:
    """The ring order `ids` (sorted) read from `start` on, as a walk from it gives it."""
    ordered = sorted(ids)
    i = ordered.index(start)
    return ordered[i:] + ordered[:i]


def ideal_owner(ids: Iterable[int], key: int) -> int:
    """The first id at or after key, clockwise."""
    ordered = sorted(ids)
    return next((i for i in ordered if i >= key), ordered[0])


# In-process queries: one event loop per call, so they suit synchronous tests.


def query(use: Callable[[NodeClient], Awaitable[T]], address: str, deadline: float = 5.0) -> T:
    async def go() -> T:
        client = await NodeClient.connect(address, deadline)
        try:
            return await use(client)
        finally:
            await client.close()

    return asyncio.run(go())


def walk_ring(address: str) -> list[NodeRef]:
    return query(lambda c: c.ring(), address)


def lookup_owners(address: str, keys: Sequence[int]) -> list[int]:
    """Owner ids of keys as looked up by the node at address."""

    async def go(client: NodeClient) -> list[int]:
        return [(await client.lookup(key)).owner.id for key in keys]

    return query(go, address)


def ring_ids_or_fail(address: str) -> list[int]:
    """`walk_ring` as ids, with an unreachable node turned into an AssertionError."""
    try:
        return [n.id for n in walk_ring(address)]
    except PeerError as err:
        raise AssertionError(str(err)) from None


@dataclass
class NodeProcess:
    """One `chordshare node` process and the log it writes (its stderr)."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    args: tuple[str, ...]
    id: int = -1
    address: str = ""
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, timeout: float = START_DEADLINE) -> NodeProcess:
        """Wait for the "serving at" line; AssertionError with the log if the node exits."""
        deadline = time.monotonic() + timeout
        while True:
            found = READY.search(self.log())
            if found:
                self.id, self.address = int(found[1]), found[2]
                return self
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"node {' '.join(self.args)} exited {self.popen.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"node not up after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful leave) and the exit code."""
        self.signal(signal.SIGTERM)
        return self.popen.wait(timeout)


@dataclass
class Processes:
    """Every node process a test started, so that all of them can be cleaned up."""

    workdir: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(
        self,
        *,
        node_id: int | None = None,
        bits: int | None = None,
        join: str | None = None,
        bind: str = f"{HOST}:0",
        extra: Sequence[str] = (),
        wait: bool = True,
        prefix: Sequence[str] = (),
    ) -> NodeProcess:
        """Start `chordshare node` (port 0 unless `bind` says otherwise: the node reports
        the port it got, so there is no race for free ports), under `prefix` if given (a
        command that execs the rest, such as `prlimit --nofile=256:256`). Call from the
        test's own thread: the node is killed when the thread that started it ends."""
        args = ["node", "--bind", bind]
        if node_id is not None:
            args += ["--id", str(node_id)]
        if bits is not None:
            args += ["--bits", str(bits)]
        if join is not None:
            args += ["--join", join]
        args += list(extra)
        if "--data-dir" not in extra:  # never the user's own data directory
            args += ["--data-dir", str(self.workdir / f"data-{len(self.nodes)}")]
        if "--api" not in extra:  # a web server per node only where a test uses it
            args += ["--api", "off"]
        label = "hashed" if node_id is None else str(node_id)
        log_path = self.workdir / f"node-{len(self.nodes)}-{label}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        popen = subprocess.Popen(
            [*prefix, *CLI, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # only a prctl: safe between fork and exec
        )
        node = NodeProcess(popen, log_path, tuple(args))
        self.nodes.append(node)
        return node.wait_ready() if wait else node

    def start_many(
        self, count: int, join: str, *, bits: int | None = None, extra: Sequence[str] = ()
    ) -> list[NodeProcess]:
        """Start `count` nodes joining through `join` at the same time, and wait for all."""
        started = [self.start(join=join, bits=bits, extra=extra, wait=False) for _ in range(count)]
        return [node.wait_ready() for node in started]

    def live(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.running() and not n.stopped]

    def by_id(self, ident: int) -> NodeProcess:
        return next(n for n in self.nodes if n.id == ident)

    def cleanup(self) -> None:
        """Kill every process started here (a frozen one is thawed first so that it dies
        at once); print the end of each log for the test report."""
        for node in self.nodes:
            if node.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGCONT)
                    os.kill(node.pid, signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)
        for log in self._logs:
            log.close()
        for node in self.nodes:
            tail = node.log().splitlines()[-5:]
            print(f"--- node {node.id} {node.address} exit {node.popen.returncode}")
            print("\n".join(tail))
