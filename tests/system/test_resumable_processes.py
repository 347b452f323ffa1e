"""`chordshare put` killed with kill -9 half-way resumes when run again, as a user sees it:
a node process behind a relay that slows the uploads down (so the kill lands mid-transfer),
the CLI in processes of its own, and the node's /metrics counting what it received. The
node is killed and started again on its data directory between the two runs; a node with a
tiny --unfinished-put-ttl drops what it kept, and frees its quota, once that time is up."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CLI, HOST, Processes, free_port, run_cli, wait_until

# A minute or more on a busy machine: the kill must land mid-transfer through a relay.
pytestmark = [pytest.mark.processes, pytest.mark.system]

MIB = 1024 * 1024
SIZE = 48 * MIB
RATE = 16 * MIB  # bytes per second the relay lets through toward the node


class SlowRelay:
    """A TCP relay on loopback that passes bytes toward `target` at RATE bytes per second
    (and back at full speed), in a thread of its own."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._relay, HOST, self.port)
        self._stop = asyncio.Event()
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, RATE),
            self._pipe(up_reader, writer, None),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: int | None
    ) -> None:
        try:
            while data := await reader.read(64 * 1024):
                writer.write(data)
                await writer.drain()
                if rate is not None:
                    await asyncio.sleep(len(data) / rate)
        finally:
            writer.close()  # the other side sees this one go, as with a direct connection

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def metric(api: str, name: str) -> float:
    """One sample of the node's /metrics (`name` with its labels, as the text shows it)."""
    text = httpx.get(f"{api}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found[1])


RECEIVED = 'chordshare_served_bytes_total{way="in"}'
KEPT = "chordshare_unfinished_put_bytes"


def start_node(procs: Processes, port: int, relay: SlowRelay, data: Path, *extra: str) -> str:
    """A node on `port`, advertised at the relay (so puts to it go through the relay);
    returns the URL of its REST API."""
    api = free_port()
    procs.start(
        bind=f"{HOST}:{port}",
        extra=[
            "--advertise",
            f"{HOST}:{relay.port}",
            "--api",
            f"{HOST}:{api}",
            "--api-open",
            "--data-dir",
            str(data),
            *extra,
        ],
    )
    return f"http://{HOST}:{api}"


def put_killed_half_way(source: Path, address: str, api: str) -> float:
    """Run `chordshare put` and kill -9 it once the node has received a third of the file;
    return the bytes the node then keeps."""
    put = subprocess.Popen(
        [*CLI, "put", str(source), "--node", address, "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: metric(api, RECEIVED) >= SIZE / 3, 30, "a third at the node")
    finally:
        put.send_signal(signal.SIGKILL)
        put.wait(10)
    wait_until(lambda: metric(api, KEPT) > 0, 80, "the node to keep what came")
    kept = metric(api, KEPT)
    assert SIZE / 4 <= kept < SIZE
    return kept


def test_a_put_killed_half_way_sends_only_the_rest_after_the_node_restarts(
    procs: Processes, tmp_path: Path
) -> None:
    port = free_port()
    relay = SlowRelay(port)
    try:
        data_dir = tmp_path / "owner"
        api = start_node(procs, port, relay, data_dir)
        address = f"{HOST}:{relay.port}"
        source = tmp_path / "film.bin"
        source.write_bytes(os.urandom(SIZE))
        kept = put_killed_half_way(source, address, api)

        procs.nodes[-1].kill9()  # the owner restarted between the two runs
        api = start_node(procs, port, relay, data_dir)
        assert metric(api, KEPT) == kept and metric(api, RECEIVED) == 0
        started = time.monotonic()
        rerun = run_cli("put", str(source), "--node", address, "--json", timeout=60)
        assert rerun.code == 0, rerun.stderr
        assert f'"resumed": {int(kept)}' in rerun.stdout
        assert "resuming:" in rerun.stderr and "already on the node" in rerun.stderr
        # Counted on the node: the rest of the file, not a byte of what it kept.
        assert metric(api, RECEIVED) == SIZE - kept
        assert metric(api, KEPT) == 0
        assert time.monotonic() - started < 60

        out = tmp_path / "back.bin"
        got = run_cli("get", "film.bin", "-o", str(out), "--node", address, timeout=60)
        assert got.code == 0, got.stderr
        assert (
            hashlib.sha256(out.read_bytes()).digest()
            == hashlib.sha256(source.read_bytes()).digest()
        )
    finally:
        relay.close()


@pytest.mark.system  # the in-process tests check the same more quickly
def test_what_a_killed_put_left_counts_in_the_quota_until_its_ttl(
    procs: Processes, tmp_path: Path
) -> None:
    port = free_port()
    relay = SlowRelay(port)
    try:
        api = start_node(
            procs,
            port,
            relay,
            tmp_path / "owner",
            "--max-store",
            str(SIZE + SIZE // 4),  # what a killed put keeps and another file pass it
            "--unfinished-put-ttl",
            "6s",
        )
        address = f"{HOST}:{relay.port}"
        first, second = tmp_path / "first.bin", tmp_path / "second.bin"
        first.write_bytes(os.urandom(SIZE))
        second.write_bytes(os.urandom(SIZE))
        kept = put_killed_half_way(first, address, api)
        assert metric(api, "chordshare_stored_bytes") == kept  # in the quota
        refused = run_cli("put", str(second), "--node", address, timeout=60)
        assert refused.code == 2 and "quota" in refused.stderr, refused.stderr
        assert metric(api, KEPT) == kept  # still kept: its time is not up
        wait_until(lambda: metric(api, KEPT) == 0, 20, "the kept chunks to go after 6 s")
        assert metric(api, "chordshare_stored_bytes") == 0
        with contextlib.suppress(FileNotFoundError):
            chunks = tmp_path / "owner" / "chunks"
            assert [p for p in chunks.rglob("*") if p.is_file()] == []
        stored = run_cli("put", str(second), "--node", address, timeout=60)
        assert stored.code == 0, stored.stderr
    finally:
        relay.close()
