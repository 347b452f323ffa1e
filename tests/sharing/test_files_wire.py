"""The Files protocol on the wire: every call round-trips through gRPC unchanged, refusals
keep their kind and message, bad requests are refused, and the in-memory peers behave alike.

A small dict-based service stands in for a node's file service, so these tests check the
codec, servicer and client, not storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    SMALL_PUT,
    FileError,
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
    Refusal,
    StoredFile,
)
from chordshare.files.names import BadName, check_stored_name
from chordshare.files.publisher import Claim, Signer
from chordshare.files.unfinished import UnfinishedPut
from chordshare.transport import files_codec as codec
from chordshare.transport import index_codec
from chordshare.transport.base import PeerError
from chordshare.transport.files_grpc import GrpcFilePeers
from chordshare.transport.files_memory import MemoryFilePeers
from chordshare.transport.files_servicer import FilesServicer, add_files_servicer
from chordshare.transport.memory import MemoryNetwork
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

MiB = 1024 * 1024
STORED_VERSION = 1234.5


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def manifest_of(name: str, data: bytes, chunk_size: int = 4, created: float = 0.0) -> Manifest:
    chunks = tuple(sha(data[i : i + chunk_size]) for i in range(0, len(data), chunk_size))
    return Manifest(name, len(data), sha(data), chunk_size, chunks, created)


def pieces(data: bytes, chunk_size: int) -> list[tuple[int, bytes]]:
    return [(i // chunk_size, data[i : i + chunk_size]) for i in range(0, len(data), chunk_size)]


async def stream(items: Sequence[tuple[int, bytes]]) -> AsyncIterator[tuple[int, bytes]]:
    for item in items:
        yield item


@dataclass
class FakeFiles:
    """A node's file service in a few dicts, refusing the way the real one does."""

    files: dict[str, Manifest] = field(default_factory=dict)
    chunks: dict[bytes, bytes] = field(default_factory=dict)
    index: dict[str, list[IndexEntry]] = field(default_factory=dict)
    locators: list[tuple[Locator, float]] = field(default_factory=list)
    holders: tuple[str, ...] = ("10.0.0.1:4000", "10.0.0.2:4000")
    fetches_closed: int = 0
    gate: asyncio.Event | None = None  # when set up, each chunk after the first waits for it
    claims: dict[str, Claim | None] = field(default_factory=dict)  # of removals, by name
    offered: list[FileVersion] = field(default_factory=list)

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        manifest = header.manifest
        held = self.files.get(manifest.name)
        if held is not None and held.sha256 == manifest.sha256:
            return PutOutcome(held, unchanged=True)
        if held is not None and not header.replace:
            raise FileError(Refusal.ALREADY_EXISTS, f"{manifest.name!r} exists with other bytes")
        async for index, data in chunks:
            if sha(data) != manifest.chunks[index]:
                raise FileError(Refusal.DATA_LOSS, f"chunk {index} does not match its hash")
            self.chunks[manifest.chunks[index]] = data
        if any(d not in self.chunks for d in manifest.chunks):
            raise FileError(Refusal.FAILED_PRECONDITION, "chunks are missing")
        stored = replace(manifest, created=STORED_VERSION)
        self.files[manifest.name] = stored
        return PutOutcome(stored, unchanged=False)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        return [i for i, d in enumerate(digests) if d not in self.chunks]

    async def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        try:
            found = [m for m in self.files.values() if m.sha256 == sha256]
            if not found:
                raise FileError(Refusal.NOT_FOUND, f"no file with sha256 {sha256.hex()} here")
            for index in indexes:
                if index >= len(found[0].chunks):
                    raise FileError(Refusal.INVALID_ARGUMENT, f"no chunk {index} in that file")
                yield index, self.chunks[found[0].chunks[index]]
                if self.gate is not None:
                    await self.gate.wait()
        finally:
            self.fetches_closed += 1

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        manifest = self.files.get(name)
        if manifest is None:
            return None
        data = b"".join(self.chunks[d] for d in manifest.chunks)
        return FoundFile(manifest, self.holders, data if len(data) <= inline_up_to else None)

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        return await self.find_file(name, 0, owner_only), None

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        self.offered.extend(versions)
        wanted, newer = [], []
        for offered in versions:
            held = self.files.get(offered.name)
            if held is None or held.created < offered.version:
                wanted.append(offered.name)
            else:
                newer.append(FileVersion(held.name, held.created, held.sha256))
        return OfferAnswer(tuple(wanted), tuple(newer))

    async def delete(
        self, name: str, version: float = 0.0, replica: bool = False, claim: Claim | None = None
    ) -> bool:
        self.claims[name] = claim
        if replica and version <= 0:
            raise FileError(Refusal.INVALID_ARGUMENT, "a replica delete needs a version")
        return self.files.pop(name, None) is not None

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        if ttl <= 0 and not remove:
            raise FileError(Refusal.INVALID_ARGUMENT, "ttl must be positive")
        for record in records:
            entries = self.index.setdefault(record.key, [])
            if remove:
                entries[:] = [e for e in entries if e != record.entry]
            elif record.entry not in entries:
                entries.append(record.entry)

    async def query_index(self, key: str) -> list[IndexEntry]:
        return list(self.index.get(key, []))

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        if len(self.locators) + len(locators) > 3:
            raise FileError(Refusal.RESOURCE_EXHAUSTED, "too many locators here")
        self.locators += [(loc, ttl) for loc in locators]

    async def list_files(self) -> FileListing:
        files = tuple(StoredFile(m, shared=False) for m in self.files.values())
        return FileListing(files, sum(m.size for m in self.files.values()), None)


@dataclass
class Served:
    service: FakeFiles
    address: str
    peers: GrpcFilePeers


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    service = FakeFiles()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 * MiB)])
    add_files_servicer(FilesServicer(service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peers = GrpcFilePeers(timeout=5.0)
    try:
        yield Served(service, f"127.0.0.1:{port}", peers)
    finally:
        await peers.close()
        await server.stop(None)


@contextlib.asynccontextmanager
async def raw_stub(address: str) -> AsyncIterator[pb_grpc.FilesStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.FilesStub(channel)


DATA = b"the quick brown fox jumps"  # 25 bytes: 7 chunks of 4, the last one short


async def put(s: Served, name: str = "fox.txt", data: bytes = DATA, chunk: int = 4) -> PutOutcome:
    manifest = manifest_of(name, data, chunk)
    return await s.peers.at(s.address).put_file(PutHeader(manifest), stream(pieces(data, chunk)))


# Round trips.


async def test_put_then_find_fetch_and_list(served: Served) -> None:
    s = served
    outcome = await put(s)
    assert outcome == PutOutcome(manifest_of("fox.txt", DATA, created=STORED_VERSION), False)
    again = await put(s)
    assert again.unchanged

    found = await s.peers.at(s.address).find_file("fox.txt")
    assert found == FoundFile(outcome.manifest, s.service.holders)
    whole = await s.peers.at(s.address).find_file("fox.txt", inline_up_to=len(DATA))
    assert whole == FoundFile(outcome.manifest, s.service.holders, DATA)
    assert await s.peers.at(s.address).find_file("absent") is None

    got = [c async for c in s.peers.at(s.address).fetch_chunks(sha(DATA), [6, 0, 3])]
    assert got == [(6, DATA[24:]), (0, DATA[:4]), (3, DATA[12:16])]

    listing = await s.peers.at(s.address).list_files()
    assert listing == FileListing((StoredFile(outcome.manifest, False),), len(DATA), None)


async def test_missing_chunks_offer_and_delete(served: Served) -> None:
    s = served
    await put(s)
    digests = [sha(DATA[:4]), sha(b"nope"), sha(DATA[4:8]), sha(b"nor this")]
    assert await s.peers.at(s.address).missing_chunks(digests) == [1, 3]
    assert await s.peers.at(s.address).missing_chunks([]) == []

    offered = [
        FileVersion("fox.txt", 1.0, sha(DATA)),
        FileVersion("new.txt", 2.0, sha(b"new")),
        FileVersion("gone.txt", 3.0, b"", deleted=True),
    ]
    answer = await s.peers.at(s.address).offer(offered)
    assert answer == OfferAnswer(
        ("new.txt", "gone.txt"), (FileVersion("fox.txt", STORED_VERSION, sha(DATA)),)
    )

    assert await s.peers.at(s.address).delete("fox.txt") is True
    assert await s.peers.at(s.address).delete("fox.txt", 5.5, replica=True) is False
    assert s.service.claims == {"fox.txt": None}


async def test_publishers_and_signatures_travel_with_versions(served: Served) -> None:
    s = served
    signer = Signer.generate()
    claim = signer.sign("fox.txt", 9.5, sha(DATA))
    manifest = replace(manifest_of("fox.txt", DATA, 4, created=9.5), claim=claim)
    assert codec.manifest_from_pb(codec.manifest_to_pb(manifest)) == manifest

    removal = FileVersion("gone.txt", 3.0, b"", True, claim=signer.sign("gone.txt", 3.0, b"", True))
    await s.peers.at(s.address).offer([removal])
    assert s.service.offered == [removal]
    await s.peers.at(s.address).delete("gone.txt", 3.0, claim=removal.claim)
    assert s.service.claims == {"gone.txt": removal.claim}

    half = codec.manifest_to_pb(manifest)
    half.ClearField("signature")
    with pytest.raises(ValueError, match="signature"):
        codec.manifest_from_pb(half)


async def test_index_and_locators(served: Served) -> None:
    s = served
    entry = IndexEntry("q3 report.pdf", 12345, sha(b"report"))
    other = IndexEntry("report.txt", 0, sha(b""))
    records = [IndexRecord("word:report", entry), IndexRecord("word:report", other)]
    await s.peers.at(s.address).publish_index(records, ttl=60.0)
    assert await s.peers.at(s.address).query_index("word:report") == [entry, other]
    await s.peers.at(s.address).publish_index(records[:1], ttl=0.0, remove=True)
    assert await s.peers.at(s.address).query_index("word:report") == [other]
    assert await s.peers.at(s.address).query_index("word:nothing") == []

    locator = Locator(manifest_of("shared.bin", b"shared bytes", 5, created=7.25), "10.0.0.9:4000")
    await s.peers.at(s.address).publish_locators([locator], ttl=30.0)
    assert s.service.locators == [(locator, 30.0)]


async def test_fetch_streams_many_megabyte_chunks(served: Served) -> None:
    s = served
    data = os.urandom(12 * MiB)
    outcome = await put(s, "big.bin", data, MiB)
    assert len(outcome.manifest.chunks) == 12
    got = [c async for c in s.peers.at(s.address).fetch_chunks(sha(data), range(12))]
    assert [i for i, _ in got] == list(range(12))
    assert b"".join(d for _, d in got) == data


async def test_closing_a_fetch_early_cancels_it(served: Served) -> None:
    s = served
    data = os.urandom(8 * MiB)
    await put(s, "big.bin", data, MiB)
    s.service.gate = asyncio.Event()  # never set: only the close can end the server's fetch
    fetch = s.peers.at(s.address).fetch_chunks(sha(data), range(8))
    async with contextlib.aclosing(fetch):  # type: ignore[type-var]
        async for index, _ in fetch:
            assert index == 0
            break
    give_up = time.monotonic() + 3
    while s.service.fetches_closed < 1:  # the server saw the cancellation
        assert time.monotonic() < give_up, "the server's fetch was never closed"
        await asyncio.sleep(0.01)


# Refusals keep their kind and message.


async def expect_refusal(refusal: Refusal, message: str, work: object) -> None:
    with pytest.raises(FileError) as caught:
        await work  # type: ignore[misc]
    assert (caught.value.refusal, caught.value.message) == (refusal, message)


async def test_refusals_arrive_unchanged(served: Served) -> None:
    s = served
    await put(s)
    other = b"other bytes entirely"
    await expect_refusal(
        Refusal.ALREADY_EXISTS,
        "'fox.txt' exists with other bytes",
        put(s, "fox.txt", other),
    )
    manifest = manifest_of("bad.txt", b"abcdefgh", 4)
    corrupt = stream([(0, b"abcd"), (1, b"XXXX")])
    await expect_refusal(
        Refusal.DATA_LOSS,
        "chunk 1 does not match its hash",
        s.peers.at(s.address).put_file(PutHeader(manifest), corrupt),
    )
    await expect_refusal(
        Refusal.FAILED_PRECONDITION,
        "chunks are missing",
        s.peers.at(s.address).put_file(PutHeader(manifest), stream([(0, b"abcd")])),
    )
    await expect_refusal(
        Refusal.INVALID_ARGUMENT,
        "a replica delete needs a version",
        s.peers.at(s.address).delete("fox.txt", replica=True),
    )
    locator = Locator(manifest, "10.0.0.9:4000")
    await expect_refusal(
        Refusal.RESOURCE_EXHAUSTED,
        "too many locators here",
        s.peers.at(s.address).publish_locators([locator] * 4, ttl=1.0),
    )
    # Before the first chunk, and in the middle of the stream.
    absent = sha(b"absent")
    with pytest.raises(FileError) as caught:
        _ = [c async for c in s.peers.at(s.address).fetch_chunks(absent, [0])]
    assert caught.value.refusal is Refusal.NOT_FOUND
    assert caught.value.message == f"no file with sha256 {absent.hex()} here"
    got = []
    with pytest.raises(FileError) as caught:
        async for chunk in s.peers.at(s.address).fetch_chunks(sha(DATA), [0, 1, 99]):
            got.append(chunk)
    assert got == [(0, DATA[:4]), (1, DATA[4:8])]
    assert (caught.value.refusal, caught.value.message) == (
        Refusal.INVALID_ARGUMENT,
        "no chunk 99 in that file",
    )
    assert s.address not in s.peers.health  # refusals come from a peer that is alive


async def test_an_error_in_the_callers_chunks_is_raised_as_is(served: Served) -> None:
    s = served

    async def failing() -> AsyncIterator[tuple[int, bytes]]:
        yield 0, DATA[:4]
        raise OSError("disk went away")

    manifest = manifest_of("fox.txt", DATA)
    with pytest.raises(OSError, match="disk went away"):
        await s.peers.at(s.address).put_file(PutHeader(manifest), failing())
    assert "fox.txt" not in s.service.files


# Failures that are not refusals.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_peer_fails_quickly() -> None:
    peers = GrpcFilePeers(timeout=3.0)
    address = f"127.0.0.1:{free_port()}"
    try:
        started = time.monotonic()
        with pytest.raises(PeerError) as caught:
            await peers.at(address).find_file("x")
        assert caught.value.address == address
        with pytest.raises(PeerError):
            _ = [c async for c in peers.at(address).fetch_chunks(sha(b"x"), [0])]
        with pytest.raises(PeerError):
            await peers.at(address).put_file(PutHeader(manifest_of("x", DATA)), stream([]))
        assert time.monotonic() - started < 2.5
        assert address in peers.health
    finally:
        await peers.close()


async def test_a_peer_without_the_files_service_is_a_peer_error() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peers = GrpcFilePeers(timeout=3.0)
    try:
        with pytest.raises(PeerError, match="not a chordshare node"):
            await peers.at(f"127.0.0.1:{port}").list_files()
    finally:
        await peers.close()
        await server.stop(None)


# Malformed requests.


async def test_malformed_requests_are_invalid_arguments(served: Served) -> None:
    s = served
    short = manifest_of("x", DATA)
    bad = codec.manifest_to_pb(replace(short, sha256=b"12345"))

    async def requests(*parts: pb.PutRequest) -> AsyncIterator[pb.PutRequest]:
        for part in parts:
            yield part

    header = pb.PutRequest(header=pb.PutHeader(manifest=codec.manifest_to_pb(short)))
    chunk = pb.PutRequest(chunk=pb.PutChunk(index=0, data=DATA[:4]))
    async with raw_stub(s.address) as stub:
        attempts = {
            "5-byte hash": stub.PutFile(requests(pb.PutRequest(header=pb.PutHeader(manifest=bad)))),
            "chunk first": stub.PutFile(requests(chunk, header)),
            "empty stream": stub.PutFile(requests()),
            "two headers": stub.PutFile(requests(header, chunk, header)),
            "chunk beyond": stub.PutFile(
                requests(header, pb.PutRequest(chunk=pb.PutChunk(index=7, data=b"")))
            ),
            "short digest": stub.MissingChunks(pb.MissingChunksRequest(chunks=[b"abc"])),
            "bad locator": stub.PublishLocators(
                pb.PublishLocatorsRequest(locators=[pb.Locator(manifest=bad, address="a:1")])
            ),
            "bad fetch": stub.FetchChunks(pb.FetchRequest(sha256=b"1", indexes=[0])).read(),
            "small put, no header": stub.PutSmallFile(pb.PutSmallRequest()),
            "small put, chunk beyond": stub.PutSmallFile(
                pb.PutSmallRequest(header=header.header, chunks=[pb.PutChunk(index=7)])
            ),
            "small put, too many chunks": stub.PutSmallFile(
                pb.PutSmallRequest(header=header.header, chunks=[chunk.chunk] * 8)
            ),
            "small put, too large": stub.PutSmallFile(
                pb.PutSmallRequest(
                    header=pb.PutHeader(
                        manifest=codec.manifest_to_pb(
                            manifest_of("big", bytes(SMALL_PUT + 1), SMALL_PUT + 1)
                        )
                    )
                )
            ),
        }
        for what, attempt in attempts.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await attempt
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
            assert caught.value.details(), what
    assert s.service.files == {}


# In memory.


async def test_memory_peers_forward_and_fail_like_the_network() -> None:
    network = MemoryNetwork()
    services = {"a:1": FakeFiles(), "b:1": FakeFiles()}
    for address in services:
        network.nodes[address] = object()  # type: ignore[assignment]
    peers = MemoryFilePeers(network, services, timeout=0.05)  # type: ignore[arg-type]

    manifest = manifest_of("fox.txt", DATA)
    outcome = await peers.at("a:1").put_file(PutHeader(manifest), stream(pieces(DATA, 4)))
    assert outcome.manifest.created == STORED_VERSION
    assert "fox.txt" in services["a:1"].files and not services["b:1"].files
    got = [c async for c in peers.at("a:1").fetch_chunks(sha(DATA), [1, 2])]
    assert got == [(1, DATA[4:8]), (2, DATA[8:12])]
    assert await peers.at("b:1").find_file("fox.txt") is None
    with pytest.raises(FileError) as caught:
        _ = [c async for c in peers.at("b:1").fetch_chunks(sha(DATA), [0])]
    assert caught.value.refusal is Refusal.NOT_FOUND

    network.kill("a:1")
    with pytest.raises(PeerError, match="connection refused"):
        await peers.at("a:1").find_file("fox.txt")
    with pytest.raises(PeerError, match="connection refused"):
        _ = [c async for c in peers.at("a:1").fetch_chunks(sha(DATA), [0])]
    assert "a:1" in peers.health

    network.freeze("b:1")
    started = time.monotonic()
    with pytest.raises(PeerError, match="did not answer in time"):
        await peers.at("b:1").list_files()
    assert 0.04 < time.monotonic() - started < 1.0
    network.thaw("b:1")
    assert (await peers.at("b:1").list_files()).files == ()
    assert "b:1" not in peers.health
    await peers.close()


# The codec.

digests = st.binary(min_size=32, max_size=32)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    chunk_size = draw(st.integers(1, 1 << 20))
    count = draw(st.integers(0, 6))
    size = 0 if count == 0 else draw(st.integers((count - 1) * chunk_size + 1, count * chunk_size))
    return Manifest(
        name=draw(st.text(max_size=40)),
        size=size,
        sha256=draw(digests),
        chunk_size=chunk_size,
        chunks=tuple(draw(st.lists(digests, min_size=count, max_size=count))),
        created=draw(st.floats(allow_nan=False, allow_infinity=False)),
    )


@given(manifests())
def test_manifests_round_trip(manifest: Manifest) -> None:
    wire = codec.manifest_to_pb(manifest).SerializeToString()
    assert codec.manifest_from_pb(pb.Manifest.FromString(wire)) == manifest


@given(manifests(), st.booleans(), st.booleans(), st.sampled_from(["", "10.0.0.1:4000"]))
def test_other_values_round_trip(manifest: Manifest, flag: bool, other: bool, address: str) -> None:
    header = PutHeader(manifest, replace=flag, replica=other)
    assert codec.put_header_from_pb(codec.put_header_to_pb(header)) == header
    listing = FileListing((StoredFile(manifest, flag),), 10, 100 if other else None)
    assert index_codec.file_listing_from_pb(index_codec.file_listing_to_pb(listing)) == listing
    found = FoundFile(manifest, (address,) if address else ())
    try:
        check_stored_name(manifest.name)
    except BadName:  # a get would save the file under it: such an answer is garbage
        with pytest.raises(BadName):
            codec.found_file_from_pb(codec.found_file_to_pb(found))
        return
    assert codec.found_file_from_pb(codec.found_file_to_pb(found)) == found
    if address and manifest.size:
        whole = FoundFile(manifest, (address,), bytes(manifest.size))
        assert codec.found_file_from_pb(codec.found_file_to_pb(whole)) == whole


def test_inline_bytes_must_match_the_manifest_and_name_their_holder() -> None:
    manifest = manifest_of("x", DATA)
    wire = codec.found_file_to_pb(FoundFile(manifest, ("10.0.0.1:4000",), DATA))
    assert codec.found_file_from_pb(wire).data == DATA
    wire.data = DATA + b"!"
    with pytest.raises(ValueError, match=f"{len(DATA) + 1} inline bytes for a file of"):
        codec.found_file_from_pb(wire)
    wire.data = DATA
    del wire.holders[:]
    with pytest.raises(ValueError, match="without the holder"):
        codec.found_file_from_pb(wire)


def test_decoding_refuses_inconsistent_manifests() -> None:
    good = manifest_of("x", DATA)
    for bad, problem in [
        (replace(good, sha256=b"12345"), "32 bytes"),
        (replace(good, chunks=(*good.chunks[:-1], b"short")), "chunk hash 6"),
        (replace(good, chunks=good.chunks[:-1]), "the manifest lists 6"),
        (replace(good, chunk_size=0), "chunk size must be positive"),
    ]:
        with pytest.raises(ValueError, match=problem):
            codec.manifest_from_pb(codec.manifest_to_pb(bad))
    with pytest.raises(ValueError, match="sha256"):
        codec.file_version_from_pb(pb.FileVersion(name="x", version=1.0, sha256=b"1"))
    tombstone = FileVersion("x", 1.0, b"", deleted=True)
    assert codec.file_version_from_pb(codec.file_version_to_pb(tombstone)) == tombstone
    with pytest.raises(ValueError, match="without its manifest"):
        codec.put_outcome_from_pb(pb.PutReply())
