"""What one slow or hostile peer can ask of a node: streams per peer, a put that stalls, the
quota under puts that run together, lists longer than a request may carry, numbers that are
not finite. Each is tried with a raw gRPC client; the node keeps answering everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import math
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.manifest import MAX_CHUNKS, Manifest
from chordshare.files.messages import FileError, IndexEntry, IndexRecord, PutHeader, Refusal
from chordshare.sharing.chunking import build_manifest
from chordshare.sharing.service import FileService
from chordshare.storage.chunks import ChunkStore
from chordshare.storage.store import NodeStore
from chordshare.transport.call_share import CallShare
from chordshare.transport.files_servicer import FilesServicer, add_files_servicer
from chordshare.transport.limits import (
    BUSY_RETRY_AFTER,
    MAX_FETCH_INDEXES,
    MAX_INDEX_RECORDS,
    MAX_LOCATORS,
    MAX_OFFER_FILES,
    MAX_SUCCESSORS,
    SERVER_OPTIONS,
    PeerSlots,
    StreamLimits,
    TooManyStreams,
    peer_host,
    retry_after_of,
)
from chordshare.v1 import chord_pb2, chord_pb2_grpc
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

CHUNK = 16 * 1024
SOON = 10.0  # seconds a refusal that comes at once may take on a busy machine


def file_of(name: str, size: int, seed: int = 0) -> tuple[Manifest, list[bytes]]:
    data = hashlib.shake_256(f"{name}{seed}".encode()).digest(size)
    pieces = [data[i : i + CHUNK] for i in range(0, size, CHUNK)]
    chunks = tuple(hashlib.sha256(p).digest() for p in pieces)
    return Manifest(name, size, hashlib.sha256(data).digest(), CHUNK, chunks, 0.0), pieces


def header(manifest: Manifest) -> pb.PutRequest:
    return pb.PutRequest(
        header=pb.PutHeader(
            manifest=pb.Manifest(
                name=manifest.name,
                size=manifest.size,
                sha256=manifest.sha256,
                chunk_size=manifest.chunk_size,
                chunks=list(manifest.chunks),
            )
        )
    )


def chunk(index: int, data: bytes) -> pb.PutRequest:
    return pb.PutRequest(chunk=pb.PutChunk(index=index, data=data))


class HeldFetches(FileService):
    """A file service whose chunk streams wait until `release` is set: streams that stay
    open as long as a test wants."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = asyncio.Event()
        self.streaming = 0

    async def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        self.streaming += 1
        try:
            await self.release.wait()
            yield 0, b"x"
        finally:
            self.streaming -= 1


@dataclass
class FilesNode:
    """The Files service alone on a loopback port, with limits a test picks."""

    server: grpc.aio.Server
    service: HeldFetches
    store: NodeStore
    channel: grpc.aio.Channel
    stub: pb_grpc.FilesStub

    async def healthy(self) -> None:
        listing = await self.stub.ListFiles(pb.ListFilesRequest(), timeout=SOON)
        assert listing.max_bytes == (self.store.max_bytes or 0)


@pytest.fixture
async def start_node(tmp_path: Path) -> AsyncIterator:
    started: list[FilesNode] = []

    async def start(limits: StreamLimits, max_bytes: int | None = None) -> FilesNode:
        store = NodeStore(tmp_path / f"node{len(started)}", max_bytes)
        service = HeldFetches("127.0.0.1:1", store)
        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[CallShare()])
        add_files_servicer(FilesServicer(service, limits), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        node = FilesNode(server, service, store, channel, pb_grpc.FilesStub(channel))
        started.append(node)
        return node

    yield start
    for node in started:
        node.service.release.set()
        await node.channel.close()
        await node.server.stop(None)
        node.store.close()


async def status_of(call: grpc.aio.Call) -> grpc.StatusCode:
    """How a call ended; the replies of a stream are read (and dropped) to its end."""

    async def ended() -> grpc.StatusCode:
        if isinstance(call, grpc.aio.UnaryStreamCall):
            with contextlib.suppress(grpc.aio.AioRpcError):
                while await call.read() is not grpc.aio.EOF:
                    pass
        return await call.code()

    return await asyncio.wait_for(ended(), SOON)


def test_peer_host_groups_a_hosts_connections() -> None:
    assert peer_host("ipv4:10.0.0.5:4123") == peer_host("ipv4:10.0.0.5:999") == "10.0.0.5"
    assert peer_host("ipv6:[fd00::5]:4123") == "fd00::5"
    # On loopback every local node shares the address: each connection is a peer.
    assert peer_host("ipv6:[::1]:4123") != peer_host("ipv6:[::1]:4124")
    assert peer_host("ipv4:127.0.0.1:4123") == "ipv4:127.0.0.1:4123"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"
    slots = PeerSlots(1, "puts")
    with slots.slot("a"), slots.slot("b"):
        with pytest.raises(TooManyStreams, match="a already has 1 puts"), slots.slot("a"):
            pass
        assert slots.held("a") == 1
    assert slots.held("a") == 0


async def test_a_peer_cannot_hold_more_puts_than_its_share(start_node) -> None:
    node = await start_node(StreamLimits(puts_per_peer=2, put_idle=60))
    stalled = []
    for i in range(2):
        call = node.stub.PutFile()
        await call.write(header(file_of(f"stall{i}", 3 * CHUNK)[0]))
        stalled.append(call)
    await wait_until(lambda: len(node.service.puts._putting) == 2, SOON, "two puts to start")
    third = node.stub.PutFile()
    await third.write(header(file_of("third", CHUNK)[0]))
    try:
        await third
    except grpc.aio.AioRpcError as err:
        # Busy, not broken: "not now", with how long to wait.
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "already has 2 puts open here" in (err.details() or "")
        assert retry_after_of(err.trailing_metadata()) == BUSY_RETRY_AFTER
    else:
        raise AssertionError("a third put from one peer was accepted")
    await node.healthy()  # unary calls are not streams: still answered

    stalled[0].cancel()
    await wait_until(lambda: node.service.puts._putting == {"stall1"}, SOON, "a slot to free up")
    manifest, pieces = file_of("after", 2 * CHUNK)
    call = node.stub.PutFile()
    await call.write(header(manifest))
    for i, piece in enumerate(pieces):
        await call.write(chunk(i, piece))
    await call.done_writing()
    assert (await asyncio.wait_for(call, SOON)).manifest.name == "after"
    stalled[1].cancel()


async def test_a_peer_cannot_hold_more_chunk_streams_than_its_share(start_node) -> None:
    node = await start_node(StreamLimits(fetches_per_peer=3))
    request = pb.FetchRequest(sha256=bytes(32), indexes=[0])
    held = [node.stub.FetchChunks(request) for _ in range(3)]
    await wait_until(lambda: node.service.streaming == 3, SOON, "three streams to open")
    refused = node.stub.FetchChunks(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(refused.read(), SOON)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "chunk streams open here" in (err.value.details() or "")
    await node.healthy()
    node.service.release.set()
    for call in held:
        assert (await asyncio.wait_for(call.read(), SOON)).data == b"x"
        assert await status_of(call) == grpc.StatusCode.OK
    # The slots are given back: as many streams open again.
    again = [node.stub.FetchChunks(request) for _ in range(3)]
    for call in again:
        assert await status_of(call) == grpc.StatusCode.OK


async def test_a_stalled_put_of_large_chunks_keeps_them_for_its_rerun(start_node) -> None:
    """A connection lost without a word: the put ends at its idle limit, and what it
    stored (chunks over 64 KiB, on disk) stays as the name's unfinished put."""
    node = await start_node(StreamLimits(put_idle=0.5))
    size = 128 * 1024
    data = hashlib.shake_256(b"stalled-big").digest(4 * size)
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    chunks = tuple(hashlib.sha256(p).digest() for p in pieces)
    manifest = Manifest("big", len(data), hashlib.sha256(data).digest(), size, chunks, 0.0)
    call = node.stub.PutFile()
    await call.write(header(manifest))
    await call.write(chunk(0, pieces[0]))
    await call.write(chunk(2, pieces[2]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call, SOON)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    kept = node.store.unfinished("big")
    assert kept is not None and kept.held == ((0, chunks[0]), (2, chunks[2]))
    assert node.store.used_bytes() == 2 * size and node.store.manifests() == []
    assert not node.service.puts._putting


async def test_a_stalled_put_is_cut_off_and_leaves_nothing(start_node) -> None:
    node = await start_node(StreamLimits(put_idle=0.5))
    # Over SMALL_PUT, so its chunks are stored as they come (a small put is received whole
    # first: see below).
    manifest, pieces = file_of("stalled", 5 * CHUNK)
    call = node.stub.PutFile()
    await call.write(header(manifest))
    await call.write(chunk(0, pieces[0]))
    await wait_until(lambda: node.store.used_bytes() == CHUNK, SOON, "the first chunk")
    await node.healthy()  # others are served while it stalls
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call, SOON)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "sent nothing for 0.5 s" in (err.value.details() or "")
    assert node.store.used_bytes() == 0 and not node.store.has_chunk(manifest.chunks[0])
    assert node.store.manifests() == [] and not node.service.puts._putting
    # A put that never sends its header is cut off too.
    silent = node.stub.PutFile()
    assert await status_of(silent) == grpc.StatusCode.DEADLINE_EXCEEDED
    # The name is free again.
    call = node.stub.PutFile()
    await call.write(header(manifest))
    for i, piece in enumerate(pieces):
        await call.write(chunk(i, piece))
    await call.done_writing()
    assert (await asyncio.wait_for(call, SOON)).manifest.size == 5 * CHUNK
    # A small put that stalls halfway is cut off the same way, and stores nothing.
    small, small_pieces = file_of("small", 2 * CHUNK)
    call = node.stub.PutFile()
    await call.write(header(small))
    await call.write(chunk(0, small_pieces[0]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call, SOON)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert node.store.manifest("small") is None and not node.store.has_chunk(small.chunks[0])
    assert node.store.used_bytes() == 5 * CHUNK and not node.service.puts._putting


async def test_a_put_over_the_quota_is_refused_before_its_bytes_arrive(start_node) -> None:
    node = await start_node(StreamLimits(put_idle=60), max_bytes=4 * CHUNK)
    call = node.stub.PutFile()
    await call.write(header(file_of("big", 5 * CHUNK)[0]))  # the header only
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call, SOON)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota of 65536 bytes" in (err.value.details() or "")
    assert node.store.used_bytes() == 0


async def test_puts_under_way_together_cannot_pass_the_quota(start_node) -> None:
    # Files over SMALL_PUT: their room is reserved at the header (a small put is received
    # whole first, then reserved and stored in one step of the event loop).
    node = await start_node(StreamLimits(put_idle=60), max_bytes=10 * CHUNK)
    first, first_pieces = file_of("first", 6 * CHUNK)
    put_first = node.stub.PutFile()
    await put_first.write(header(first))
    await wait_until(lambda: node.store._reserved == 6 * CHUNK, SOON, "the first reservation")
    # Nothing of the first put is stored yet, but its space is taken.
    put_second = node.stub.PutFile()
    await put_second.write(header(file_of("second", 6 * CHUNK)[0]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(put_second, SOON)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "reserved by puts under way" in (err.value.details() or "")
    for i, piece in enumerate(first_pieces):
        await put_first.write(chunk(i, piece))
    await put_first.done_writing()
    await asyncio.wait_for(put_first, SOON)
    assert node.store.used_bytes() == 6 * CHUNK and node.store._reserved == 0
    # A file sharing the stored chunks needs no new room.
    same = Manifest("copy", first.size, first.sha256, CHUNK, first.chunks, 0.0)
    put_copy = node.stub.PutFile()
    await put_copy.write(header(same))
    await put_copy.done_writing()
    assert (await asyncio.wait_for(put_copy, SOON)).manifest.name == "copy"
    assert node.store.used_bytes() == 6 * CHUNK


def test_published_records_are_bounded(tmp_path: Path) -> None:
    service = FileService("127.0.0.1:1", NodeStore(tmp_path))
    service.soft.index.limit = 3
    entry = IndexEntry("a", 1, bytes(32))

    async def run() -> None:
        await service.publish_index([IndexRecord(f"word:{i}", entry) for i in range(3)], 60)
        # Refreshing what is there is always allowed; one more is not.
        await service.publish_index([IndexRecord("word:0", entry)], 60)
        with pytest.raises(Exception, match="at most 3 published records"):
            await service.publish_index([IndexRecord("word:new", entry)], 60)
        await service.publish_index([IndexRecord("word:0", entry)], 0, remove=True)
        await service.publish_index([IndexRecord("word:new", entry)], 60)
        assert len(service.soft.index) == 3

    asyncio.run(run())
    # Once every record has expired (never asked about again), they make room.
    service.soft.index.clock = lambda: 1e12
    assert service.soft.index.room_for([(f"word:{i}", "other") for i in range(3)])
    assert len(service.soft.index) == 0


@pytest.fixture
async def lone_peer(tmp_path: Path) -> AsyncIterator:
    net = PeerNetwork(tmp_path)
    peer = await net.start()
    channel = grpc.aio.insecure_channel(peer.server.node.me.address)
    yield pb_grpc.FilesStub(channel), chord_pb2_grpc.ChordStub(channel)
    await channel.close()
    await net.close()


async def test_overlong_lists_and_endless_numbers_are_refused(lone_peer) -> None:
    files, chord = lone_peer
    digest = bytes(32)
    entry = pb.IndexEntry(name="a", size=1, sha256=digest)
    manifest = pb.Manifest(name="m", size=1, sha256=digest, chunk_size=1, chunks=[digest])
    refused = {
        "indexes": files.FetchChunks(
            pb.FetchRequest(sha256=digest, indexes=[0] * (MAX_FETCH_INDEXES + 1))
        ).read(),
        "chunk hashes": files.MissingChunks(
            pb.MissingChunksRequest(chunks=[digest] * (MAX_CHUNKS + 1))
        ),
        "offered versions": files.Offer(
            pb.OfferRequest(files=[pb.FileVersion(name="a", sha256=digest)] * (MAX_OFFER_FILES + 1))
        ),
        "index records": files.PublishIndex(
            pb.PublishIndexRequest(
                records=[pb.IndexRecord(key="k", entry=entry)] * (MAX_INDEX_RECORDS + 1), ttl=1
            )
        ),
        "locators": files.PublishLocators(
            pb.PublishLocatorsRequest(
                locators=[pb.Locator(manifest=manifest, address="127.0.0.1:1")]
                * (MAX_LOCATORS + 1),
                ttl=1,
            )
        ),
        "successors": chord.Leave(
            chord_pb2.LeaveRequest(
                leaving=chord_pb2.Node(id=b"\1", address="127.0.0.1:1"),
                successors=[chord_pb2.Node(id=b"\1", address="127.0.0.1:1")] * (MAX_SUCCESSORS + 1),
            )
        ),
        "finite": files.Delete(pb.DeleteRequest(name="a", version=math.nan, replica=True)),
        "time to live": files.PublishIndex(
            pb.PublishIndexRequest(records=[pb.IndexRecord(key="k", entry=entry)], ttl=math.inf)
        ),
        "version of 'late'": files.Offer(
            pb.OfferRequest(files=[pb.FileVersion(name="late", version=math.inf, sha256=digest)])
        ),
        "characters": files.PublishIndex(
            pb.PublishIndexRequest(records=[pb.IndexRecord(key="k" * 5000, entry=entry)], ttl=1)
        ),
        "file name": files.Delete(pb.DeleteRequest(name="../x")),
    }
    for words, call in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(call, 30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, words
        assert words in (err.value.details() or ""), (words, err.value.details())
    put = files.PutFile()
    bad = pb.Manifest(name="x", size=1, sha256=digest, chunk_size=1, chunks=[digest])
    bad.created = math.inf
    await put.write(pb.PutRequest(header=pb.PutHeader(manifest=bad)))
    assert await status_of(put) == grpc.StatusCode.INVALID_ARGUMENT
    assert (await chord.Ping(chord_pb2.PingRequest(), timeout=SOON)).joined


async def test_a_full_disk_refuses_the_put_and_keeps_nothing_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = NodeStore(tmp_path / "node")
    service = FileService("127.0.0.1:1", store)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(4 * 128 * 1024))  # over SMALL_PUT: the streaming path
    manifest = build_manifest(source, "big.bin", 128 * 1024)
    real_put = ChunkStore.put
    room = [2]  # chunk files the disk takes before it is full

    def filling(self: ChunkStore, data: bytes, *args: object, **kwargs: object) -> bytes:
        if room[0] == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        room[0] -= 1
        return real_put(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ChunkStore, "put", filling)

    async def chunks() -> AsyncIterator[tuple[int, bytes]]:
        data = source.read_bytes()
        for index in range(len(manifest.chunks)):
            yield index, data[index * 128 * 1024 : (index + 1) * 128 * 1024]

    with pytest.raises(FileError) as refused:
        await service.put_file(PutHeader(manifest), chunks())
    assert refused.value.refusal is Refusal.RESOURCE_EXHAUSTED
    assert "no room left on its disk" in refused.value.message
    assert store.manifest("big.bin") is None
    assert not any(store.has_chunk(d) for d in manifest.chunks)  # the two stored are dropped
    assert store.used_bytes() == 0
    await service.close()
