"""Slow clients of a node's REST API do not take the node off its ring.

A node whose descriptor limit is 256 is sent 400 clients that send part of a request head,
then a byte a second, and connect again whenever the node closes them (slowloris). While
they press: the node stays in its ring as a peer walks it, its gRPC port answers
`chordshare info`, it holds no more descriptors than its API's cap allows, and its log has
no traceback. Once they stop connecting again, the API closes every one of them at its
head deadline and answers a request again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx
import pytest
from helpers import HOST, Processes, api_url, eventually, ring_ids_or_fail, run_cli, wait_until

from chordshare.faces.api_limits import HEAD_TIMEOUT, connections_for

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(180)]

LIMIT = 256  # the limited node's hard RLIMIT_NOFILE; it starts with a soft one below
SLOW = 400  # slow clients, more than the node has descriptors
CONNECT = 5.0  # seconds a slow client waits for its connect before trying again
HOLD = 15.0  # seconds the node is watched while they press
PART = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


class SlowClients:
    """`count` slowloris clients of one port, run on an event loop in a thread of their
    own; every socket is closed when the `with` block ends."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.open = 0  # connections made and not yet closed by the server
        self.made = 0
        self.closed_after: list[float] = []  # seconds each one lived until the server closed it
        self.again = True  # connect again when closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(CONNECT + 10)
        assert not self._thread.is_alive(), "the slow clients did not stop"

    async def _all(self) -> None:
        await asyncio.gather(*(self._one() for _ in range(self.count)))

    async def _one(self) -> None:
        while not self._stop.is_set():
            try:
                connecting = asyncio.open_connection(HOST, self.port)
                reader, writer = await asyncio.wait_for(connecting, CONNECT)
            except (OSError, TimeoutError):
                if not self.again:
                    return
                continue  # not let in (the node's listen backlog is full): try again
            self.made += 1
            self.open += 1
            try:
                await self._drip(reader, writer)
            finally:
                self.open -= 1
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            if not self.again:
                return

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send a byte of a head that never ends each second until the server closes."""
        started = time.monotonic()
        writer.write(PART)
        closed = asyncio.ensure_future(reader.read(1))  # b"" (or a reset) when it closes
        try:
            while not self._stop.is_set():
                done, _ = await asyncio.wait({closed}, timeout=1.0)
                if done:
                    self.closed_after.append(time.monotonic() - started)
                    return
                writer.write(b"a")
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await closed


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soft_nofile(pid: int) -> int:
    line = next(
        x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in x
    )
    return int(line.split()[3])


def healthy(url: str) -> None:
    """The API answers; a long timeout keeps the probe's place in the listen backlog."""
    try:
        answer = httpx.get(f"{url}/healthz", timeout=2 * HEAD_TIMEOUT)
    except httpx.HTTPError as err:
        raise AssertionError(f"no answer: {err!r}") from None
    assert answer.status_code == 200, answer.text


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts descriptors in /proc")
def test_slow_clients_of_its_api_do_not_take_a_node_off_its_ring(procs: Processes) -> None:
    first = procs.start()
    limited = procs.start(
        join=first.address,
        extra=["--api", f"{HOST}:0"],
        prefix=["prlimit", f"--nofile={LIMIT // 2}:{LIMIT}"],
    )
    peer = procs.start(join=first.address)
    everyone = {first.id, limited.id, peer.id}
    eventually(lambda: assert_ring(peer.address, everyone), 60)
    url = api_url(limited.log())
    healthy(url)
    assert soft_nofile(limited.pid) == LIMIT  # raised to the hard limit by the node itself
    cap = connections_for(LIMIT)
    before = descriptors(limited.pid)

    with SlowClients(int(url.rsplit(":", 1)[1]), SLOW) as slow:
        # More are connected than the API takes: the rest wait in its listen backlog.
        wait_until(lambda: slow.open > cap, 30, f"more than {cap} slow clients connected")
        watched_until = time.monotonic() + HOLD
        most = 0
        while time.monotonic() < watched_until:
            most = max(most, descriptors(limited.pid))
            assert limited.id in ring_ids_or_fail(peer.address)
            info = run_cli("info", "--node", limited.address, "--json")
            assert info.code == 0, info.stderr
        assert slow.open > cap, "the slow clients stopped pressing before the checks ended"
        assert most <= before + cap + 16, (before, most, cap)

        slow.again = False
        stopped = time.monotonic()
        eventually(lambda: healthy(url), 4 * HEAD_TIMEOUT + 30, interval=0.5)
        answered = time.monotonic() - stopped
        wait_until(lambda: slow.open == 0, 4 * HEAD_TIMEOUT + 30, "every slow client closed")
        drained = time.monotonic() - stopped

    lived = sorted(slow.closed_after)
    print(
        f"{slow.made} slow connections, at most {most - before} more descriptors than the "
        f"{before} before (cap {cap}); closed after {lived[0]:.1f}..{lived[-1]:.1f} s; the API "
        f"answered {answered:.1f} s and the last one closed {drained:.1f} s after they stopped "
        "connecting again"
    )
    assert len(lived) == slow.made  # each one was closed by the node, none by us
    assert lived[0] >= HEAD_TIMEOUT - 1
    assert limited.id in ring_ids_or_fail(peer.address)
    log = limited.log()
    assert "Traceback" not in log and "descriptor limit" not in log.lower(), log[-3000:]


def assert_ring(address: str, ids: set[int]) -> None:
    found = set(ring_ids_or_fail(address))
    assert found == ids, (found, ids)
