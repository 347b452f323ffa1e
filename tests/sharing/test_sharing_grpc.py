"""Whole peers (ring + files) on loopback gRPC in one process: put, get, search, replace,
remove, replication to k holders, handover on join and leave, repair after a crash."""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.messages import INLINE_LIMIT, FileError, Refusal
from chordshare.files.names import BadName
from chordshare.files.placement import file_key
from chordshare.node.server import NodeSettings
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.peer_setup import DataDirInUse, SharingSettings
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeer, GrpcFilePeers

CHUNK = 64 * 1024


class Network(PeerNetwork):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.clients: list[GrpcFilePeers] = []

    def client(self, peer: SharingPeer) -> FileClient:
        peers = GrpcFilePeers()
        self.clients.append(peers)
        return FileClient(NodeRing(peer.server.node), peers)

    def holders(self, name: str) -> list[SharingPeer]:
        return [p for p in self.live() if p.store.manifest(name) is not None]

    async def crash(self, peer: SharingPeer) -> None:
        await peer.stop(graceful=False)


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Network]:
    n = Network(tmp_path)
    yield n
    for c in n.clients:
        await c.close()
    await n.close()


def write(path: Path, size: int, seed: int = 0) -> bytes:
    data = hashlib.shake_256(f"{seed}".encode()).digest(size) if size else b""
    path.write_bytes(data)
    return data


async def test_put_on_one_get_from_another_from_several_holders(
    net: Network, tmp_path: Path
) -> None:
    a, _, _, d = await net.ring(4)
    data = write(tmp_path / "q3-report.pdf", 40 * CHUNK + 123)
    outcome = await net.client(a).put(tmp_path / "q3-report.pdf", chunk_size=CHUNK)
    assert outcome.manifest.size == len(data) and not outcome.unchanged
    await wait_until(lambda: len(net.holders("q3-report.pdf")) == 3, 10, "3 copies")
    client = net.client(d)
    found = await client.find("q3-report.pdf")
    assert len(found.holders) >= 2
    report = await client.get("q3-report.pdf", tmp_path / "out.pdf", found=found)
    assert (tmp_path / "out.pdf").read_bytes() == data
    assert sum(report.sources.values()) == len(data)
    assert sum(1 for b in report.sources.values() if b > 0) >= 2

    await wait_until(
        lambda: any(p.service.soft.index.get("word:report") for p in net.live()),
        10,
        "the index to be published",
    )
    hits = await client.search("REPORT q3")
    assert [h.name for h in hits] == ["q3-report.pdf"]
    assert await client.search("nothing-here") == []
    by_content = await client.find("sha256:" + hashlib.sha256(data).hexdigest())
    assert by_content.manifest.name == "q3-report.pdf"


async def test_second_put_of_a_name_and_remove(net: Network, tmp_path: Path) -> None:
    a, b, _ = await net.ring(3)
    client = net.client(a)
    write(tmp_path / "notes.txt", 1000, seed=1)
    first = await client.put(tmp_path / "notes.txt")
    again = await client.put(tmp_path / "notes.txt")
    assert again.unchanged and again.manifest.created == first.manifest.created
    newer = write(tmp_path / "other", 2000, seed=2)
    with pytest.raises(FileError) as refused:
        await client.put(tmp_path / "other", name="notes.txt")
    assert refused.value.refusal is Refusal.ALREADY_EXISTS
    replaced = await client.put(tmp_path / "other", name="notes.txt", replace=True)
    assert replaced.manifest.created > first.manifest.created
    await wait_until(
        lambda: (
            [p.store.manifest("notes.txt").size for p in net.holders("notes.txt")] == [2000] * 3
        ),
        10,
        "every holder to have the new version",
    )
    await net.client(b).get("notes.txt", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == newer

    await client.remove("notes.txt")
    await wait_until(lambda: not net.holders("notes.txt"), 10, "every copy to be removed")
    with pytest.raises(FileError) as missing:
        await client.find("notes.txt")
    assert missing.value.refusal is Refusal.NOT_FOUND
    with pytest.raises(FileError):
        await client.remove("notes.txt")
    for bad in ("", "a/../b", "/abs", "..", "x\0y", "é" * 200):
        with pytest.raises(BadName):
            await client.put(tmp_path / "other", name=bad)


async def test_owner_crash_then_repair_restores_copies(net: Network, tmp_path: Path) -> None:
    peers = await net.ring(5)
    data = write(tmp_path / "movie.mkv", 10 * CHUNK)
    await net.client(peers[0]).put(tmp_path / "movie.mkv", chunk_size=CHUNK)
    await wait_until(lambda: len(net.holders("movie.mkv")) == 3, 10, "3 copies")
    space = peers[0].server.node.space
    owner = (await peers[0].server.node.lookup(file_key(space, "movie.mkv"))).owner
    victim = next(p for p in net.live() if p.server.node.me == owner)
    await net.crash(victim)
    survivor = next(p for p in net.live())
    await net.client(survivor).get("movie.mkv", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == data
    await wait_until(net.converged, 20, "the ring to heal")
    await wait_until(lambda: len(net.holders("movie.mkv")) == 3, 20, "repair to 3 copies")


async def test_keys_move_on_join_and_graceful_leave(net: Network, tmp_path: Path) -> None:
    a = await net.start()
    names = [f"file-{i}.bin" for i in range(12)]
    for name in names:
        write(tmp_path / name, 100 + len(name), seed=len(name))
        await net.client(a).put(tmp_path / name)
    # Alone, a holds everything; as peers join, each name ends on exactly its 3 owners.
    for _ in range(4):
        await net.start(join=a.server.node.me.address)
    await wait_until(net.converged, 20, "5 peers to converge")

    def placed_right() -> bool:
        live = net.live()
        ids = sorted(p.server.node.me.id for p in live)
        by_id = {p.server.node.me.id: p for p in live}
        space = a.server.node.space
        for name in names:
            key = file_key(space, name)
            first = next((i for i in ids if i >= key), ids[0])
            start = ids.index(first)
            want = {ids[(start + j) % len(ids)] for j in range(3)}
            have = {p.server.node.me.id for p in net.holders(name)}
            if have != want or any(by_id[i].store.manifest(name) is None for i in want):
                return False
        return True

    await wait_until(placed_right, 20, "every name on its owner and 2 successors")
    leaver = next(p for p in net.live() if p is not a)
    await leaver.stop(graceful=True)
    await wait_until(net.converged, 20, "the ring to relink")
    await wait_until(placed_right, 20, "names to move on after a graceful leave")


async def test_restart_on_its_data_dir_keeps_files(net: Network, tmp_path: Path) -> None:
    a = await net.start(name="keeper")
    write(tmp_path / "kept.txt", 5000)
    await net.client(a).put(tmp_path / "kept.txt")
    second = SharingPeer(NodeSettings(bind="127.0.0.1:0"), SharingSettings(tmp_path / "keeper"))
    with pytest.raises(DataDirInUse):
        await second.start()
    await a.stop(graceful=False)
    again = await net.start(name="keeper")
    listing = await again.service.list_files()
    assert [f.manifest.name for f in listing.files] == ["kept.txt"]
    await net.client(again).get("kept.txt", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == (tmp_path / "kept.txt").read_bytes()


async def test_quota_refuses_and_keeps_other_files(net: Network, tmp_path: Path) -> None:
    a = await net.start(max_store=100_000)
    client = net.client(a)
    write(tmp_path / "small", 50_000)
    await client.put(tmp_path / "small")
    write(tmp_path / "big", 80_000, seed=3)
    with pytest.raises(FileError) as refused:
        await client.put(tmp_path / "big")
    assert refused.value.refusal is Refusal.RESOURCE_EXHAUSTED
    assert [m.name for m in a.store.manifests()] == ["small"]
    assert a.store.used_bytes() == 50_000
    await client.get("small", tmp_path / "small-back")
    assert (tmp_path / "small-back").read_bytes() == (tmp_path / "small").read_bytes()


async def _chunks(pieces: list[tuple[int, bytes]]):
    for piece in pieces:
        yield piece


async def test_bad_streams_are_refused_and_lose_nothing(net: Network, tmp_path: Path) -> None:
    from chordshare.files.messages import PutHeader
    from chordshare.sharing.chunking import build_manifest

    a = await net.start()
    address = a.server.node.me.address
    client = net.client(a)
    write(tmp_path / "keep", 3000, seed=9)
    await client.put(tmp_path / "keep")
    data = write(tmp_path / "f", 3 * 1024, seed=8)
    manifest = build_manifest(tmp_path / "f", "f", chunk_size=1024)
    peers = client.peers
    pieces = [(i, data[i * 1024 : (i + 1) * 1024]) for i in range(3)]
    cases = {
        Refusal.INVALID_ARGUMENT: [pieces[0], (1, pieces[1][1] + b"extra"), pieces[2]],
        Refusal.DATA_LOSS: [pieces[0], (1, bytes(1024)), pieces[2]],
        Refusal.FAILED_PRECONDITION: pieces[:2],
    }
    for refusal, stream in cases.items():
        with pytest.raises(FileError) as refused:
            await peers.at(address).put_file(PutHeader(manifest), _chunks(stream))
        assert refused.value.refusal is refusal, refused.value.message
    lying = replace(manifest, sha256=bytes(32))  # chunks that do not add up to the file
    with pytest.raises(FileError) as refused:
        await peers.at(address).put_file(PutHeader(lying), _chunks(pieces))
    assert refused.value.refusal is Refusal.DATA_LOSS
    assert [m.name for m in a.store.manifests()] == ["keep"]
    assert a.store.used_bytes() == 3000
    assert a.store.collect_garbage() == 0  # nothing of the refused puts was left behind


async def test_two_clients_putting_one_name_at_once(net: Network, tmp_path: Path) -> None:
    a, b = await net.ring(2)
    one = write(tmp_path / "one", 300_000, seed=10)
    two = write(tmp_path / "two", 300_000, seed=11)
    results = await asyncio.gather(
        net.client(a).put(tmp_path / "one", name="same.bin", chunk_size=1024),
        net.client(b).put(tmp_path / "two", name="same.bin", chunk_size=1024),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], FileError)
    assert lost[0].refusal in (Refusal.ABORTED, Refusal.ALREADY_EXISTS), lost[0].message
    await net.client(b).get("same.bin", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() in (one, two)
    assert hashlib.sha256((tmp_path / "got").read_bytes()).digest() == won[0].manifest.sha256


async def test_an_owner_without_its_copy_yet_still_refuses_a_second_put(
    net: Network, tmp_path: Path
) -> None:
    """A node that just took over a name's key has no copy until repair brings it: a put
    must be judged against the copy its successors hold, not taken for a first one."""
    a, _, _ = await net.ring(3)
    client = net.client(a)
    original = write(tmp_path / "doc.txt", 4000, seed=12)
    first = await client.put(tmp_path / "doc.txt")
    await wait_until(lambda: len(net.holders("doc.txt")) == 3, 10, "3 copies")
    space = a.server.node.space
    owner_ref = (await a.server.node.lookup(file_key(space, "doc.txt"))).owner
    owner = next(p for p in net.live() if p.server.node.me == owner_ref)
    # As if it had just joined in front of the old owner: no copy yet, a new predecessor.
    owner.store.remove("doc.txt")
    owner._predecessor = object()
    write(tmp_path / "other", 5000, seed=13)
    with pytest.raises(FileError) as refused:
        await client.put(tmp_path / "other", name="doc.txt")
    assert refused.value.refusal is Refusal.ALREADY_EXISTS
    same = await client.put(tmp_path / "doc.txt")
    assert same.unchanged and same.manifest.created == first.manifest.created
    replaced = await client.put(tmp_path / "other", name="doc.txt", replace=True)
    assert replaced.manifest.created > first.manifest.created
    await wait_until(
        lambda: (
            {p.store.manifest("doc.txt").size for p in net.holders("doc.txt")} == {5000}
            and len(net.holders("doc.txt")) == 3
        ),
        10,
        "the replacement to win everywhere",
    )
    assert original != (tmp_path / "other").read_bytes()


class CountingPeer(GrpcFilePeer):
    """A peer as `CountingPeers` reaches it."""

    peers: CountingPeers

    def fetch_chunks(  # type: ignore[override]
        self, sha256: bytes, indexes: Sequence[int], repair: bool = False, manifest_id: bytes = b""
    ):
        self.peers.fetches += 1
        return super().fetch_chunks(sha256, indexes, repair, manifest_id)

    async def find_file(  # type: ignore[override]
        self, name: str, inline_up_to: int = 0, owner_only: bool = False, manifest_id: bytes = b""
    ):
        found = await super().find_file(name, inline_up_to, owner_only, manifest_id)
        if self.peers.lie and found is not None and found.data is not None:
            found = replace(found, data=bytes(len(found.data)))
        return found


class CountingPeers(GrpcFilePeers):
    """Counts FetchChunks calls; `lie` corrupts the inline bytes of FindFile answers."""

    def __init__(self, lie: bool = False) -> None:
        super().__init__()
        self.fetches = 0
        self.lie = lie

    def at(self, address: str) -> CountingPeer:
        return CountingPeer(self, address)


async def test_a_small_get_takes_its_bytes_from_the_find_answer(
    net: Network, tmp_path: Path
) -> None:
    """A file of at most INLINE_LIMIT bytes comes back with FindFile: no FetchChunks call.
    Inline bytes are verified like fetched chunks: a holder that sends wrong ones is passed
    over and the chunks come from the other holders."""
    a, _, _, d = await net.ring(4)
    small = write(tmp_path / "note.txt", 4096, seed=1)
    large = write(tmp_path / "big.bin", INLINE_LIMIT + 1, seed=2)
    client = net.client(a)
    for path in (tmp_path / "note.txt", tmp_path / "big.bin"):
        await client.put(path, chunk_size=CHUNK)
    await wait_until(lambda: len(net.holders("note.txt")) == 3, 10, "3 copies")

    counting = CountingPeers()
    net.clients.append(counting)
    reader = FileClient(NodeRing(d.server.node), counting)
    report = await reader.get("note.txt", tmp_path / "note.out")
    assert (tmp_path / "note.out").read_bytes() == small
    assert counting.fetches == 0 and sum(report.sources.values()) == len(small)
    await reader.get("big.bin", tmp_path / "big.out")
    assert (tmp_path / "big.out").read_bytes() == large and counting.fetches > 0

    liar = CountingPeers(lie=True)
    net.clients.append(liar)
    fooled = FileClient(NodeRing(d.server.node), liar)
    found = await fooled.find("note.txt")
    assert found.inline is not None and found.inline[1] == bytes(len(small))
    report = await fooled.get("note.txt", tmp_path / "note.again", found=found)
    assert (tmp_path / "note.again").read_bytes() == small
    assert liar.fetches >= 1 and report.sources[found.inline[0]] == 0
    assert report.refetched_chunks == 1


def _live_stream_calls() -> int:
    return sum(isinstance(o, grpc.aio.UnaryStreamCall) for o in gc.get_objects())


async def test_a_get_leaves_no_fetch_call_for_the_cycle_collector(
    net: Network, tmp_path: Path
) -> None:
    """Every FetchChunks call of a download is freed as soon as it ends. A call cut off
    mid-stream stays in a reference cycle (the call, its reader, the last chunk) until
    Python's cycle collector runs, and over a 1 GiB get those megabytes raised the
    client's peak memory by tens of MB."""
    a, b = await net.ring(2)
    data = write(tmp_path / "big.bin", 48 * CHUNK + 5, seed=3)
    await net.client(a).put(tmp_path / "big.bin", chunk_size=CHUNK)
    await wait_until(lambda: len(net.holders("big.bin")) == 2, 10, "2 copies")
    counting = CountingPeers()
    net.clients.append(counting)
    reader = FileClient(NodeRing(b.server.node), counting)
    found = await reader.find("big.bin")
    gc.collect()
    gc.disable()
    try:
        before = _live_stream_calls()
        await reader.get("big.bin", tmp_path / "big.out", found=found)
        left = _live_stream_calls() - before
    finally:
        gc.enable()
    assert (tmp_path / "big.out").read_bytes() == data
    assert counting.fetches >= 4  # several batches, so several calls could have been left
    assert left == 0, f"{left} of {counting.fetches} FetchChunks calls were left in cycles"
