"""A put that sends its manifest last (manifest_last): the client reads and hashes a large
file as it sends it, the owner hashes each chunk as it stores it and checks the closing
manifest. Every way such a stream can be wrong is refused and leaves nothing behind. Real
peers on loopback gRPC."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, PutHeader, PutOutcome, Refusal
from chordshare.sharing.chunking import build_manifest
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport import files_codec as codec
from chordshare.transport.files_grpc import GrpcFilePeer, GrpcFilePeers
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

CHUNK = 128 * 1024
SIZE = 5 * CHUNK + 1000


class RecordingPeer(GrpcFilePeer):
    """A peer as `RecordingPeers` reaches it."""

    peers: RecordingPeers

    async def find_file(self, name, inline_up_to=0, owner_only=False, manifest_id=b""):  # type: ignore[no-untyped-def]
        found = await super().find_file(name, inline_up_to, owner_only, manifest_id)
        return None if self.peers.blind else found

    async def find_for_put(self, name, owner_only=False):  # type: ignore[no-untyped-def]
        found, unfinished = await super().find_for_put(name, owner_only)
        return (None, None) if self.peers.blind else (found, unfinished)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        missing = await super().missing_chunks(digests)
        return list(range(len(digests))) if self.peers.blind else missing

    async def put_file(self, header, chunks, trailer=None) -> PutOutcome:  # type: ignore[no-untyped-def]
        self.peers.headers.append(header)
        return await super().put_file(header, chunks, trailer)


class RecordingPeers(GrpcFilePeers):
    """GrpcFilePeers that remember the header of every put they send."""

    def __init__(self) -> None:
        super().__init__(timeout=5.0)
        self.headers: list[PutHeader] = []
        # Answer every FindFile with "not here" and every MissingChunks with "all of them":
        # the owner as a put that lost a race to another saw it.
        self.blind = False

    def at(self, address: str) -> RecordingPeer:
        return RecordingPeer(self, address)


@pytest.fixture
async def peers() -> AsyncIterator[RecordingPeers]:
    recording = RecordingPeers()
    yield recording
    await recording.close()


async def alone(net: PeerNetwork, peers: RecordingPeers) -> tuple[SharingPeer, FileClient]:
    """A ring of one peer, and a client of it that keeps one copy of each file."""
    [peer] = await net.ring(1)
    return peer, FileClient(NodeRing(peer.server.node), peers, replicas=1)


def write(path: Path, size: int = SIZE, seed: str = "") -> bytes:
    data = hashlib.shake_256(f"{path.name}{seed}".encode()).digest(size)
    path.write_bytes(data)
    return data


def nothing_kept(peer: SharingPeer, name: str) -> None:
    assert peer.store.manifest(name) is None
    assert peer.store.chunks.digests() == []
    assert peer.store.used_bytes() == 0
    assert peer.store._reserved == 0


async def in_order(
    data: bytes, order: Sequence[int] | None = None
) -> AsyncIterator[tuple[int, bytes]]:
    count = -(-len(data) // CHUNK)
    for index in order if order is not None else range(count):
        yield index, data[index * CHUNK : (index + 1) * CHUNK]


async def test_a_new_large_file_is_sent_once_with_its_manifest_last(
    net: PeerNetwork, peers: RecordingPeers, tmp_path: Path
) -> None:
    peer, client = await alone(net, peers)
    data = write(tmp_path / "big.bin")
    shown: list[int] = []
    outcome = await client.put(tmp_path / "big.bin", chunk_size=CHUNK, progress=shown.append)
    assert [h.manifest_last for h in peers.headers] == [True]
    assert sum(shown) == len(data)
    expected = build_manifest(tmp_path / "big.bin", "big.bin", CHUNK)
    assert replace(outcome.manifest, created=0.0) == replace(expected, created=0.0)
    assert peer.store.manifest("big.bin") == outcome.manifest
    await client.get("big.bin", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


async def test_a_name_the_owner_holds_is_put_again_with_its_manifest_first(
    net: PeerNetwork, peers: RecordingPeers, tmp_path: Path
) -> None:
    peer, client = await alone(net, peers)
    source = tmp_path / "big.bin"
    data = write(source)
    await client.put(source, chunk_size=CHUNK)

    # The same bytes: hashed first (the owner has the name), and found unchanged.
    peers.headers.clear()
    sent = peers.bytes.sent[peer.server.node.me.address]
    again = await client.put(source, chunk_size=CHUNK)
    assert again.unchanged
    assert [h.manifest_last for h in peers.headers] == [False]
    assert peers.bytes.sent[peer.server.node.me.address] == sent

    # A client that did not see the name (another put won the race) streams it: refused
    # at the header, it puts again manifest first, and its progress never counts twice.
    peers.headers.clear()
    peers.blind = True
    shown: list[int] = []
    again = await client.put(source, chunk_size=CHUNK, progress=shown.append)
    assert again.unchanged
    assert [h.manifest_last for h in peers.headers] == [True, False]
    assert sum(shown) == len(data)
    peers.blind = False

    # Other bytes: refused unless --replace; with it, only the chunk that changed is sent.
    changed = bytearray(data)
    changed[3 * CHUNK] ^= 0xFF
    source.write_bytes(bytes(changed))
    with pytest.raises(FileError) as refused:
        await client.put(source, chunk_size=CHUNK)
    assert refused.value.refusal is Refusal.ALREADY_EXISTS
    assert "--replace" in refused.value.message
    sent = peers.bytes.sent[peer.server.node.me.address]
    await client.put(source, chunk_size=CHUNK, replace=True)
    assert peers.bytes.sent[peer.server.node.me.address] - sent == CHUNK
    await client.get("big.bin", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == bytes(changed)


async def test_content_the_owner_holds_under_another_name_is_not_sent_again(
    net: PeerNetwork, peers: RecordingPeers, tmp_path: Path
) -> None:
    peer, client = await alone(net, peers)
    address = peer.server.node.me.address
    data = write(tmp_path / "big.bin")
    await client.put(tmp_path / "big.bin", chunk_size=CHUNK)
    copy = tmp_path / "copy.bin"
    copy.write_bytes(data)

    # A new name, but the owner has its first chunk: hashed first, and no chunk is sent.
    peers.headers.clear()
    sent = peers.bytes.sent[address]
    outcome = await client.put(copy, chunk_size=CHUNK)
    assert [h.manifest_last for h in peers.headers] == [False]
    assert peers.bytes.sent[address] == sent
    assert outcome.manifest.sha256 == hashlib.sha256(data).digest()
    await client.get("copy.bin", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data

    # Other content under a new name still streams, manifest last.
    peers.headers.clear()
    other = write(tmp_path / "other.bin", seed="other")
    await client.put(tmp_path / "other.bin", chunk_size=CHUNK)
    assert [h.manifest_last for h in peers.headers] == [True]
    assert peers.bytes.sent[address] - sent == len(other)


def streamed_header(manifest: Manifest, **changes: object) -> PutHeader:
    promise = replace(manifest, sha256=b"", chunks=())
    return replace(PutHeader(promise, manifest_last=True), **changes)


@pytest.mark.parametrize(
    ("case", "refusal", "words"),
    [
        ("wrong chunk hash", Refusal.DATA_LOSS, "do not match the hashes"),
        ("wrong whole hash", Refusal.DATA_LOSS, "do not add up to its SHA-256"),
        ("other size", Refusal.INVALID_ARGUMENT, "not the one its header promised"),
        ("out of order", Refusal.INVALID_ARGUMENT, "came where chunk 0 was due"),
        ("a chunk short", Refusal.INVALID_ARGUMENT, "ended after 5 of 6 chunks"),
        ("as a replica", Refusal.INVALID_ARGUMENT, "only a client's put"),
    ],
)
async def test_a_wrong_stream_is_refused_and_leaves_nothing(
    net: PeerNetwork,
    peers: RecordingPeers,
    tmp_path: Path,
    case: str,
    refusal: Refusal,
    words: str,
) -> None:
    [peer] = await net.ring(1)
    data = write(tmp_path / "big.bin")
    manifest = build_manifest(tmp_path / "big.bin", "big.bin", CHUNK)
    header = streamed_header(manifest)
    chunks = in_order(data)
    trailer: Callable[[], Manifest] | None = lambda: manifest  # noqa: E731
    if case == "wrong chunk hash":
        trailer = lambda: replace(manifest, chunks=manifest.chunks[::-1])  # noqa: E731
    elif case == "wrong whole hash":
        trailer = lambda: replace(manifest, sha256=manifest.chunks[0])  # noqa: E731
    elif case == "other size":
        trailer = lambda: replace(manifest, size=manifest.size - 1)  # noqa: E731
    elif case == "out of order":
        chunks = in_order(data, [1, 0, 2, 3, 4, 5])
    elif case == "a chunk short":
        chunks = in_order(data, range(5))
    elif case == "as a replica":
        header = replace(header, replica=True)
    with pytest.raises(FileError) as refused:
        await peers.at(peer.server.node.me.address).put_file(header, chunks, trailer)
    assert refused.value.refusal is refusal, refused.value.message
    assert words in refused.value.message
    nothing_kept(peer, "big.bin")


async def test_what_may_not_follow_or_precede_the_closing_manifest(
    net: PeerNetwork, tmp_path: Path
) -> None:
    """Raw streams: a chunk after the manifest, a manifest the header did not announce,
    hashes in a streamed header, and a small put that says manifest_last."""
    [peer] = await net.ring(1)
    data = write(tmp_path / "big.bin")
    manifest = build_manifest(tmp_path / "big.bin", "big.bin", CHUNK)
    header = codec.put_header_to_pb(streamed_header(manifest))
    chunks = [
        pb.PutRequest(chunk=pb.PutChunk(index=i, data=data[i * CHUNK : (i + 1) * CHUNK]))
        for i in range(len(manifest.chunks))
    ]
    closing = pb.PutRequest(manifest=codec.manifest_to_pb(manifest))
    with_hashes = pb.PutHeader()
    with_hashes.CopyFrom(header)
    with_hashes.manifest.sha256 = manifest.sha256
    announced = codec.put_header_to_pb(PutHeader(manifest))
    streams = {
        "nothing follows a put's manifest": [closing, chunks[0]],
        "only when its header says manifest_last": [closing],
        "sends its hashes after its chunks": [],
    }
    async with grpc.aio.insecure_channel(peer.server.node.me.address) as channel:
        stub = pb_grpc.FilesStub(channel)
        for words, tail in streams.items():
            first = with_hashes if "after its chunks" in words else header
            if "only when" in words:
                first = announced
            body = chunks if "after its chunks" not in words else []
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.PutFile(iter([pb.PutRequest(header=first), *body, *tail]))
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, words
            assert words in (failed.value.details() or ""), failed.value.details()
            nothing_kept(peer, "big.bin")
        small = pb.PutSmallRequest(header=header)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.PutSmallFile(small)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "stream with PutFile" in (failed.value.details() or "")


async def test_a_file_that_shrinks_during_its_put_is_a_clear_error(
    net: PeerNetwork, peers: RecordingPeers, tmp_path: Path
) -> None:
    peer, client = await alone(net, peers)
    source = tmp_path / "big.bin"
    write(source)

    def shrink(nbytes: int) -> None:
        if nbytes and source.stat().st_size == SIZE:
            with source.open("r+b") as f:
                f.truncate(2 * CHUNK)

    with pytest.raises(OSError, match="changed while it was being put"):
        await client.put(source, chunk_size=CHUNK, progress=shrink)

    # The owner sees the stream cancelled and releases the bytes it had reserved; what it
    # stored stays as the unfinished put of big.bin, for a rerun, and no file is listed.
    def cleaned_up() -> bool:
        return peer.store._reserved == 0 and peer.store.unfinished("big.bin") is not None

    await wait_until(cleaned_up, 10, "the put cleaned up")
    kept = peer.store.unfinished("big.bin")
    assert kept is not None and kept.size == SIZE and kept.held
    assert peer.store.manifest("big.bin") is None
    # A rerun of the file as it is now (another size) puts it from the start: what was
    # kept goes, and the store holds exactly the new bytes.
    stored = await client.put(source, chunk_size=CHUNK)
    assert stored.manifest.size == 2 * CHUNK
    assert peer.store.unfinished("big.bin") is None
    assert sorted(peer.store.chunks.digests()) == sorted(stored.manifest.chunks)
