"""A get through a node leaves a copy there: after `chordshare get NAME --node N` or the
console's `get`, node N keeps the file in its download cache, counts it, and serves it to
the next getter as one more source, even once every holder is gone. Real peers on
loopback gRPC; the CLI in a process of its own, the console on a thread of its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from apinet import ApiNetwork as Network
from clirun import run_cli
from waiting import wait_for_answer, wait_until

from chordshare.faces.clients import ask_to_keep
from chordshare.faces.console import ChordConsole
from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, KeepOutcome
from chordshare.sharing.peer import SharingPeer
from chordshare.transport.base import PeerError
from chordshare.transport.files import FileAnswerer

MIB = 1024 * 1024


def address(peer: SharingPeer) -> str:
    return peer.server.node.me.address


async def start(net: Network, count: int, **sharing: object) -> list[SharingPeer]:
    """`count` peers keeping one copy of each file: once its holder is gone, only a
    cache can serve it."""
    return await net.ring(count, replicas=1, **sharing)


async def put_film(peers: list[SharingPeer], tmp_path: Path) -> tuple[bytes, SharingPeer]:
    """A file with one copy, and its holder."""
    data = hashlib.shake_256(b"kept").digest(2 * MIB + 7)
    (tmp_path / "film.mkv").write_bytes(data)
    await peers[0].files(peers[0].server.node).put(tmp_path / "film.mkv")
    [holder] = [p for p in peers if p.store.manifest("film.mkv") is not None]
    return data, holder


async def served_without(
    net: Network, holder: SharingPeer, via: SharingPeer, getter: SharingPeer, tmp_path: Path
) -> dict[str, int]:
    """Stop the only holder, then get the file through `getter`: who served it."""

    async def named() -> bool:
        assert holder.service is not None
        found = await holder.service.find_file("film.mkv")
        return found is not None and address(via) in found.holders

    await wait_for_answer(named, 10, "the via node to be named as a source")
    await holder.stop(graceful=False)
    await wait_until(net.converged, 20, "the ring to heal")
    sources: dict[str, int] = {}

    async def fetched() -> bool:
        nonlocal sources
        try:
            report = await getter.files(getter.server.node).get("film.mkv", tmp_path / "again")
        except FileError:
            return False  # the new owner of the key has not heard of the cache yet
        sources = report.sources
        return True

    await wait_for_answer(fetched, 10, "a get served by the via node's cache")
    return sources


async def test_a_cli_get_through_a_node_leaves_a_copy_it_serves(
    net: Network, tmp_path: Path
) -> None:
    peers = await start(net, 4)
    data, holder = await put_film(peers, tmp_path)
    via, getter = [p for p in peers if p is not holder][:2]
    code, out, err = await run_cli(
        "get", "film.mkv", "--node", address(via), "-o", str(tmp_path / "got"), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["sources"] == [{"address": address(holder), "bytes": len(data)}]
    await wait_until(lambda: via.cache.files == 1, 10, "the via node to keep the file")
    async with await net.api(via) as http:
        info = (await http.get("/api/v1/node")).json()["cache"]
    assert info["files"] == 1 and info["used_bytes"] == len(data)
    sources = await served_without(net, holder, via, getter, tmp_path)
    assert sources == {address(via): len(data)}
    assert (tmp_path / "again").read_bytes() == data


async def test_a_cli_get_with_no_keep_leaves_nothing(net: Network, tmp_path: Path) -> None:
    peers = await start(net, 3)
    _, holder = await put_film(peers, tmp_path)
    via = next(p for p in peers if p is not holder)
    out = str(tmp_path / "got")
    code, _, err = await run_cli("get", "film.mkv", "--node", address(via), "-o", out, "--no-keep")
    assert code == 0, err
    # A keep is decided before the node answers it: none was asked, none is under way.
    assert via.service is not None and via.service.keeper is not None
    assert via.service.keeper.under_way == 0 and via.cache.files == 0


async def test_a_cli_get_through_a_node_that_caches_nothing_leaves_nothing(
    net: Network, tmp_path: Path
) -> None:
    peers = await start(net, 3, cache_bytes=0)
    _, holder = await put_film(peers, tmp_path)
    via = next(p for p in peers if p is not holder)
    code, _, err = await run_cli(
        "get", "film.mkv", "--node", address(via), "-o", str(tmp_path / "got")
    )
    assert code == 0, err
    assert via.service is not None and via.service.keeper is not None
    assert via.service.keeper.under_way == 0 and via.cache.files == 0


def console_get(node: str, out: Path) -> None:
    """The console's `get`, on the calling thread's own event loop."""
    console = ChordConsole(node)
    try:
        console.onecmd(f"get film.mkv {out}")
    finally:
        console.close()


async def test_a_console_get_through_a_node_leaves_a_copy_it_serves(
    net: Network, tmp_path: Path
) -> None:
    # Locators are published again every 30 s: within the test, a getter hears of the
    # copy only if the via node announces it as soon as it has it.
    peers = await start(net, 4, republish=30.0)
    data, holder = await put_film(peers, tmp_path)
    via, getter = [p for p in peers if p is not holder][:2]
    await asyncio.to_thread(console_get, address(via), tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == data
    await wait_until(lambda: via.cache.files == 1, 10, "the via node to keep the file")

    async def a_source() -> bool:
        found = await getter.files(getter.server.node).find("film.mkv")
        return address(via) in found.holders

    await wait_for_answer(a_source, 5, "the next getter to find the via node as a source")


class _Older:
    """A node from before keeps: it answers KeepFile with UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.asked = 0

    def at(self, address: str) -> FileAnswerer:
        return self  # type: ignore[return-value]

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        self.asked += 1
        raise PeerError("127.0.0.1:1", "UNIMPLEMENTED: Method not found!")

    async def close(self) -> None:
        pass


async def test_a_node_that_cannot_keep_never_fails_the_get() -> None:
    older = _Older()
    manifest = Manifest("a.bin", 0, hashlib.sha256(b"").digest(), 1024, (), 1.0)
    await ask_to_keep(older, "127.0.0.1:1", manifest)
    assert older.asked == 1
