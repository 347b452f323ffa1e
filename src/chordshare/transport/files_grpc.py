"""`FilePeers` over gRPC (grpc.aio): one reused channel per peer.

A refusal (a status named like a `Refusal`) is raised again as `FileError` with the peer's
message; any other failure (unreachable, timed out, not a chordshare node) is a
`PeerError`. Unary calls have a deadline; the chunk streams have none, since moving a large
file takes as long as it takes: callers that need a limit cancel the call themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from typing import TypeVar

import grpc

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    SMALL_PUT,
    FileError,
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    KeepOutcome,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
    Refusal,
)
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut
from chordshare.transport import chunk_wire, index_codec
from chordshare.transport import files_codec as codec
from chordshare.transport.base import PeerError
from chordshare.transport.chunk_wire import Chunk
from chordshare.transport.grpc import CHANNEL_OPTIONS, describe_rpc_error
from chordshare.transport.health import PeerHealth
from chordshare.transport.limits import retry_after_of, version_floor_of
from chordshare.transport.security import PeerSecurity
from chordshare.transport.stats import ByteCounts
from chordshare.transport.unfinished_codec import unfinished_from_pb
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

T = TypeVar("T")

# Chunks are up to 1 MiB each plus framing; 16 MiB leaves room for big manifests and
# listings (a 100 GiB file in 1 MiB chunks has a 3.2 MiB manifest).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
FILE_CHANNEL_OPTIONS = [
    *(
        (key, value)
        for key, value in CHANNEL_OPTIONS
        if key not in ("grpc.max_receive_message_length", "grpc.max_send_message_length")
    ),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

# UNAVAILABLE is left out: whether the peer is down or said "not now", the caller is to
# look the owner up again and retry, which is what a PeerError makes it do.
REFUSALS: dict[grpc.StatusCode, Refusal] = {
    grpc.StatusCode[r.name]: r for r in Refusal if r is not Refusal.UNAVAILABLE
}
# A small put's deadline, in call timeouts: it includes the owner's copy to a successor.
SMALL_PUT_DEADLINES = 3
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class ChunkCalls:
    """A channel's two chunk-streaming methods, their chunk messages coded by `chunk_wire`
    instead of the generated stub's protobuf classes (the same bytes on the wire)."""

    SERVICE = f"/{pb.DESCRIPTOR.services_by_name['Files'].full_name}"
    FETCH = f"{SERVICE}/FetchChunks"

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.put_file = channel.stream_unary(
            f"{self.SERVICE}/PutFile",
            request_serializer=chunk_wire.encode_put_request,
            response_deserializer=pb.PutReply.FromString,
        )
        self.fetch_chunks = channel.unary_stream(
            self.FETCH,
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=chunk_wire.decode_chunk,
        )


class GrpcFilePeers:
    """Calls other nodes' Files service for one node (or one client)."""

    def __init__(
        self,
        health: PeerHealth | None = None,
        timeout: float = 10.0,
        security: PeerSecurity | None = None,
    ) -> None:
        self.health = health or PeerHealth()
        self.security = security or PeerSecurity()
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.FilesStub] = {}
        self._chunk_calls: dict[str, ChunkCalls] = {}
        self.bytes = ByteCounts()  # file data fetched from and pushed to each peer

    def stub(self, address: str) -> pb_grpc.FilesStub:
        stub = self._stubs.get(address)
        if stub is None:
            stub = self._stubs[address] = pb_grpc.FilesStub(self._channel(address))
        return stub

    def chunk_calls(self, address: str) -> ChunkCalls:
        calls = self._chunk_calls.get(address)
        if calls is None:
            calls = self._chunk_calls[address] = ChunkCalls(self._channel(address))
        return calls

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self.security.channel(address, FILE_CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    def failure(self, address: str, err: grpc.aio.AioRpcError) -> Exception:
        """The exception a failed call raises. A refusal means the peer is alive, and so
        does an UNAVAILABLE that says how long to wait (the peer is busy)."""
        if err.code() == grpc.StatusCode.UNAVAILABLE:
            retry_after = retry_after_of(err.trailing_metadata())
            if retry_after is not None:
                return FileError(Refusal.UNAVAILABLE, err.details() or "busy", retry_after)
        if err.code() in UNREACHABLE:
            # Only a peer that did not answer is suspected (and skipped by lookups); one
            # that answered with an error of its own is alive.
            self.health.record_failure(address)
        return _error_of(address, err)

    def decode(self, address: str, decode: Callable[[], T]) -> T:
        try:
            return decode()
        except ValueError as err:
            self.health.record_failure(address)
            raise PeerError(address, f"answered with a malformed reply: {err}") from None

    async def unary(
        self, address: str, send: Callable[[pb_grpc.FilesStub, float], Awaitable[T]]
    ) -> T:
        """Run one unary call with the deadline, recording how it went."""
        started = time.monotonic()
        try:
            answer = await send(self.stub(address), self.timeout)
        except grpc.aio.AioRpcError as err:
            failure = self.failure(address, err)
            if isinstance(failure, FileError):
                self.health.record_success(address, time.monotonic() - started)
            raise failure from None
        self.health.record_success(address, time.monotonic() - started)
        return answer

    def at(self, address: str) -> GrpcFilePeer:
        return GrpcFilePeer(self, address)

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        self._stubs.clear()
        self._chunk_calls.clear()
        for channel in channels:
            with contextlib.suppress(Exception):
                await channel.close()


class GrpcFilePeer:
    """One node's Files service, as `GrpcFilePeers.at` reaches it."""

    def __init__(self, peers: GrpcFilePeers, address: str) -> None:
        self.peers = peers
        self.address = address

    async def _call(self, send: Callable[[pb_grpc.FilesStub, float], Awaitable[T]]) -> T:
        return await self.peers.unary(self.address, send)

    def _read(self, decode: Callable[[], T]) -> T:
        return self.peers.decode(self.address, decode)

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        if header.manifest.size <= SMALL_PUT and not header.manifest_last:
            return await self._put_small(header, chunks)
        # gRPC consumes the request generator in a task of its own, and cancels the call if
        # it raises: the caller's error is kept here to be raised instead of the cancellation.
        raised: list[BaseException] = []
        uploaded: list[float] = []

        async def requests() -> AsyncIterator[pb.PutRequest | Chunk]:
            yield pb.PutRequest(header=codec.put_header_to_pb(header))
            try:
                async for index, data in chunks:
                    self.peers.bytes.sent[self.address] += len(data)
                    yield Chunk(index, data)
                if trailer is not None:  # the hashes, now that every chunk has been read
                    yield pb.PutRequest(manifest=codec.manifest_to_pb(trailer()))
            except Exception as err:
                raised.append(err)
                raise
            uploaded.append(time.monotonic())

        call = self.peers.chunk_calls(self.address).put_file(requests())
        try:
            reply = await call
        except grpc.aio.AioRpcError as err:
            if raised:
                raise raised[0] from None
            failure = self.peers.failure(self.address, err)
            if isinstance(failure, FileError):
                self._alive(uploaded)
            raise failure from None
        except asyncio.CancelledError:
            if raised and not _cancelling():
                raise raised[0] from None
            raise
        finally:
            call.cancel()  # a no-op once the call is over
        self._alive(uploaded)
        return self._read(lambda: codec.put_outcome_from_pb(reply))

    async def _put_small(
        self, header: PutHeader, chunks: AsyncIterable[tuple[int, bytes]]
    ) -> PutOutcome:
        """A small file's put in one message: a unary call costs less than a stream of a
        header and a chunk. Its deadline covers the owner's wait for a successor's copy."""
        parts = [pb.PutChunk(index=index, data=data) async for index, data in chunks]
        self.peers.bytes.sent[self.address] += sum(len(p.data) for p in parts)
        request = pb.PutSmallRequest(header=codec.put_header_to_pb(header), chunks=parts)
        deadline = SMALL_PUT_DEADLINES * self.peers.timeout
        reply = await self._call(lambda s, t: s.PutSmallFile(request, timeout=deadline))
        return self._read(lambda: codec.put_outcome_from_pb(reply))

    def _alive(self, uploaded: list[float]) -> None:
        # The round trip is the wait for the reply after the last chunk left, not the whole
        # upload: a long transfer must not stretch the deadlines of the peer's quick calls.
        if uploaded:
            self.peers.health.record_success(self.address, max(0.0, time.monotonic() - uploaded[0]))

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        request = codec.digests_to_pb(digests)
        reply = await self._call(lambda s, t: s.MissingChunks(request, timeout=t))
        return self._read(lambda: codec.missing_from_pb(reply, len(digests)))

    async def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Yield the asked chunks as they arrive, each chunk's data a read-only view into
        the message it came in (`chunk_wire`). Close the generator (or cancel its task) to
        cancel the call; use `contextlib.aclosing` when breaking out of it early."""
        asked = set(indexes)
        started = time.monotonic()
        first = True
        call = self.peers.chunk_calls(self.address).fetch_chunks(
            codec.fetch_request_to_pb(sha256, indexes, repair, manifest_id)
        )
        try:
            try:
                async for msg in call:
                    if first:
                        # Time to the first chunk: a round trip plus one read.
                        self.peers.health.record_success(self.address, time.monotonic() - started)
                        first = False
                    if msg.index not in asked:
                        self.peers.health.record_failure(self.address)
                        raise PeerError(
                            self.address,
                            f"answered with chunk {msg.index}, which was not asked for",
                        )
                    self.peers.bytes.received[self.address] += len(msg.data)
                    yield msg.index, msg.data  # type: ignore[misc]  # a view reads as bytes
            except grpc.aio.AioRpcError as err:
                raise self.peers.failure(self.address, err) from None
            if first:
                self.peers.health.record_success(self.address, time.monotonic() - started)
        finally:
            call.cancel()

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        request = pb.FindFileRequest(
            name=name, inline_up_to=inline_up_to, owner_only=owner_only, manifest_id=manifest_id
        )
        reply = await self._call(lambda s, t: s.FindFile(request, timeout=t))
        return self._read(lambda: codec.found_file_from_pb(reply))

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        request = pb.FindFileRequest(name=name, owner_only=owner_only, unfinished=True)
        reply = await self._call(lambda s, t: s.FindFile(request, timeout=t))
        return self._read(
            lambda: (codec.found_file_from_pb(reply), unfinished_from_pb(reply, name))
        )

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        request = codec.offer_to_pb(versions)
        reply = await self._call(lambda s, t: s.Offer(request, timeout=t))
        return self._read(lambda: codec.offer_answer_from_pb(reply))

    async def delete(
        self,
        name: str,
        version: float = 0.0,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> bool:
        request = pb.DeleteRequest(
            name=name, version=version, replica=replica, **codec.claim_fields(claim)
        )
        reply = await self._call(lambda s, t: s.Delete(request, timeout=t))
        return reply.existed

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        request = pb.PublishIndexRequest(
            records=[index_codec.index_record_to_pb(r) for r in records], ttl=ttl, remove=remove
        )
        await self._call(lambda s, t: s.PublishIndex(request, timeout=t))

    async def query_index(self, key: str) -> list[IndexEntry]:
        request = pb.QueryIndexRequest(key=key)
        reply = await self._call(lambda s, t: s.QueryIndex(request, timeout=t))
        return self.peers.decode(
            self.address, lambda: [index_codec.index_entry_from_pb(e) for e in reply.entries]
        )

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        request = pb.PublishLocatorsRequest(
            locators=[index_codec.locator_to_pb(loc) for loc in locators], ttl=ttl
        )
        await self._call(lambda s, t: s.PublishLocators(request, timeout=t))

    async def list_files(self) -> FileListing:
        reply = await self._call(lambda s, t: s.ListFiles(pb.ListFilesRequest(), timeout=t))
        return self._read(lambda: index_codec.file_listing_from_pb(reply))

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        request = pb.KeepFileRequest(name=name, manifest_id=manifest_id)
        reply = await self._call(lambda s, t: s.KeepFile(request, timeout=t))
        return self._read(lambda: codec.keep_outcome_from_pb(reply))


def _error_of(address: str, err: grpc.RpcError) -> Exception:
    """What a failed call raises: FileError for a refusal, else PeerError."""
    refusal = REFUSALS.get(err.code())  # type: ignore[attr-defined]
    if refusal is not None:
        return FileError(
            refusal,
            err.details() or refusal.name.lower(),  # type: ignore[attr-defined]
            version_floor=version_floor_of(err.trailing_metadata()),  # type: ignore[attr-defined]
        )
    return PeerError(address, describe_rpc_error(err))  # type: ignore[arg-type]


def _cancelling() -> bool:
    """Whether this task itself is being cancelled (not just the call under it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
