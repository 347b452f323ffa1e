"""A put cut off half-way resumes when it is run again: the owner keeps what it received
(`files.unfinished`), counted in its quota, for its --unfinished-put-ttl, and the rerun sends
only the rest, counted on the owner. A file changed in between is put from the start.
Real peers on loopback gRPC; the client is cut off by cancelling its put mid-stream."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.messages import FileError, PutHeader, Refusal
from chordshare.files.unfinished import Resume, UnfinishedPut
from chordshare.sharing.chunking import build_manifest
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

CHUNK = 128 * 1024  # over 64 KiB: stored as chunk files, which an unfinished put keeps
COUNT = 48
SIZE = COUNT * CHUNK - 1000


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    files = GrpcFilePeers(timeout=10.0)
    yield files
    await files.close()


def write(path: Path, size: int = SIZE, seed: str = "") -> bytes:
    data = hashlib.shake_256(f"{path.name}{seed}".encode()).digest(size)
    path.write_bytes(data)
    return data


def client_of(peer: SharingPeer, peers: GrpcFilePeers) -> FileClient:
    return FileClient(NodeRing(peer.server.node), peers, replicas=1)


def received(peer: SharingPeer) -> int:
    """Chunk bytes the peer received from puts (its /metrics `chordshare_served_bytes`)."""
    assert peer.service is not None
    return peer.service.bytes_received


async def cut_off(peer: SharingPeer, client: FileClient, path: Path) -> UnfinishedPut:
    """Put `path` and cut the client off once half of it has left; return what the owner
    kept once it has taken the put's end in."""
    put: asyncio.Task[object] | None = None
    sent = 0

    def progress(nbytes: int) -> None:
        nonlocal sent
        sent += nbytes
        if sent >= SIZE // 2 and put is not None:
            put.cancel()

    put = asyncio.create_task(client.put(path, chunk_size=CHUNK, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await put

    def kept() -> bool:
        return peer.store.unfinished(path.name) is not None and peer.store._reserved == 0

    await wait_until(kept, 70, "the owner to keep the put's chunks")  # at worst its idle limit
    record = peer.store.unfinished(path.name)
    assert record is not None and record.held
    assert peer.store.manifest(path.name) is None
    assert record.held_bytes < SIZE
    return record


async def test_a_put_cut_off_half_way_sends_only_the_rest_when_run_again(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    [peer] = await net.ring(1)
    client = client_of(peer, peers)
    source = tmp_path / "movie.bin"
    data = write(source)
    kept = await cut_off(peer, client, source)
    assert peer.store.used_bytes() == kept.held_bytes  # counted in the store's quota

    before = received(peer)
    notes: list[Resume] = []
    shown: list[int] = []
    stored = await client.put(source, chunk_size=CHUNK, progress=shown.append, resumed=notes.append)
    assert received(peer) - before == SIZE - kept.held_bytes
    assert notes == [Resume(kept.held_bytes)]
    assert shown[0] == kept.held_bytes and sum(shown) == SIZE  # the bar starts there
    assert stored.manifest.sha256 == hashlib.sha256(data).digest()
    assert peer.store.unfinished(source.name) is None  # the commit ended it
    assert sorted(peer.store.chunks.digests()) == sorted(set(stored.manifest.chunks))
    out = tmp_path / "back.bin"
    await client.get(source.name, out)
    assert out.read_bytes() == data


@pytest.mark.parametrize(
    ("manifest_last", "refusal", "words"),
    [
        (True, Refusal.INVALID_ARGUMENT, "ended without its manifest"),
        (False, Refusal.FAILED_PRECONDITION, f"ended with {COUNT - COUNT // 2} of {COUNT}"),
    ],
)
async def test_a_put_whose_stream_ends_early_is_kept_as_one_cut_off(
    net: PeerNetwork,
    peers: GrpcFilePeers,
    tmp_path: Path,
    manifest_last: bool,
    refusal: Refusal,
    words: str,
) -> None:
    """A client that goes away may leave the owner a stream that ends rather than one
    cancelled: the owner cannot tell it from a client that stopped early on purpose, and
    keeps what came either way."""
    [peer] = await net.ring(1)
    source = tmp_path / "cut.bin"
    data = write(source)
    manifest = build_manifest(source, source.name, CHUNK)
    header = PutHeader(manifest)
    if manifest_last:
        header = PutHeader(replace(manifest, sha256=b"", chunks=()), manifest_last=True)

    async def first_half() -> AsyncIterator[tuple[int, bytes]]:
        for index in range(COUNT // 2):
            yield index, data[index * CHUNK : (index + 1) * CHUNK]

    owner = peers.at(peer.server.node.me.address)
    with pytest.raises(FileError) as refused:
        await owner.put_file(header, first_half())  # the stream ends, no manifest after it
    assert refused.value.refusal is refusal and words in refused.value.message
    kept = peer.store.unfinished(source.name)
    assert kept is not None and [i for i, _ in kept.held] == list(range(COUNT // 2))
    assert peer.store.manifest(source.name) is None and peer.store._reserved == 0

    before = received(peer)
    stored = await client_of(peer, peers).put(source, chunk_size=CHUNK)
    assert received(peer) - before == SIZE - kept.held_bytes
    assert stored.manifest.sha256 == hashlib.sha256(data).digest()
    assert peer.store.unfinished(source.name) is None


async def test_a_file_changed_since_its_put_was_cut_off_is_put_from_the_start(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    [peer] = await net.ring(1)
    client = client_of(peer, peers)
    source = tmp_path / "notes.bin"
    write(source)
    kept = await cut_off(peer, client, source)
    # The same length, other bytes in a chunk the owner kept.
    changed = bytearray(source.read_bytes())
    changed[kept.held[0][0] * CHUNK] ^= 0xFF
    source.write_bytes(bytes(changed))

    before = received(peer)
    notes: list[Resume] = []
    stored = await client.put(source, chunk_size=CHUNK, resumed=notes.append)
    assert notes == [Resume(0, changed=True)]
    assert received(peer) - before == SIZE  # every byte again
    assert stored.manifest.sha256 == hashlib.sha256(changed).digest()
    # Nothing of the old bytes stays: exactly the new file's chunks are stored.
    assert peer.store.unfinished(source.name) is None
    assert sorted(peer.store.chunks.digests()) == sorted(set(stored.manifest.chunks))
    assert peer.store.used_bytes() == SIZE
    out = tmp_path / "back.bin"
    await client.get(source.name, out)
    assert out.read_bytes() == bytes(changed)


async def test_an_owner_restarted_in_between_still_resumes(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    first = await net.start(name="owner")
    source = tmp_path / "disk.img"
    data = write(source)
    kept = await cut_off(first, client_of(first, peers), source)
    await first.stop(graceful=False)

    again = await net.start(name="owner")  # the same data directory
    assert again.store.unfinished(source.name) == kept
    before = received(again)
    stored = await client_of(again, peers).put(source, chunk_size=CHUNK)
    assert received(again) - before == SIZE - kept.held_bytes
    assert stored.manifest.sha256 == hashlib.sha256(data).digest()


async def test_kept_chunks_count_in_the_quota_until_their_time_is_up(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    peer = await net.start(max_store=SIZE + CHUNK, unfinished_put_ttl=3.0)
    client = client_of(peer, peers)
    source = tmp_path / "first.bin"
    write(source)
    kept = await cut_off(peer, client, source)
    assert peer.store.used_bytes() == kept.held_bytes
    other = tmp_path / "other.bin"
    write(other)
    with pytest.raises(FileError) as refused:  # kept + other would pass the quota
        await client.put(other, chunk_size=CHUNK)
    assert refused.value.refusal is Refusal.RESOURCE_EXHAUSTED

    def swept() -> bool:
        return peer.store.unfinished(source.name) is None and not peer.store.chunks.digests()

    await wait_until(swept, 10, "the unfinished put to be dropped after its ttl")
    assert peer.store.used_bytes() == 0
    assert (await client.put(other, chunk_size=CHUNK)).manifest.size == SIZE


async def test_a_file_of_another_length_goes_from_the_start_on_a_node_near_its_quota(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    peer = await net.start(max_store=SIZE + CHUNK)
    client = client_of(peer, peers)
    source = tmp_path / "log.bin"
    write(source)
    kept = await cut_off(peer, client, source)
    # Longer now: streamed from the start, with room for all of it only once the owner
    # has dropped what it kept of the interrupted put.
    data = write(source, SIZE + CHUNK // 2, seed="longer")
    before = received(peer)
    stored = await client.put(source, chunk_size=CHUNK)
    assert received(peer) - before == len(data) > kept.held_bytes
    assert stored.manifest.sha256 == hashlib.sha256(data).digest()
    assert peer.store.unfinished(source.name) is None
    assert peer.store.used_bytes() == len(data)


async def test_with_no_ttl_nothing_is_kept(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    peer = await net.start(unfinished_put_ttl=0)
    client = client_of(peer, peers)
    source = tmp_path / "gone.bin"
    write(source)
    task = asyncio.create_task(client.put(source, chunk_size=CHUNK))
    await wait_until(lambda: received(peer) >= SIZE // 4, 10, "a quarter at the owner")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    def dropped() -> bool:
        return peer.store._reserved == 0 and not peer.store.chunks.digests()

    await wait_until(dropped, 70, "the owner to drop what came")
    assert peer.store.unfinished(source.name) is None and peer.store.used_bytes() == 0
