"""The gRPC face of a node's files: decodes requests, asks the file service, encodes answers.

A malformed request is refused with INVALID_ARGUMENT naming the problem and never reaches
the service. A `FileError` the service raises travels as the gRPC status of the same name,
with its message as the details, so the caller's `files_grpc` can raise it again.

Streams are limited per peer host (`transport.limits.StreamLimits`): beyond the limit a new
one is refused for load (UNAVAILABLE, with the time to wait in the trailing metadata: the
caller tries again), and a put that stops sending is dropped with DEADLINE_EXCEEDED after
`put_idle` seconds (what it stored is kept for its rerun as any cut-off put's is:
`files.unfinished`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    SMALL_PUT,
    FileError,
    PutCutOff,
    PutHeader,
    Refusal,
)
from chordshare.transport import chunk_wire, index_codec
from chordshare.transport import files_codec as codec
from chordshare.transport.chunk_wire import Chunk
from chordshare.transport.files import FileAnswerer
from chordshare.transport.handlers import handler_of_shape
from chordshare.transport.limits import (
    BUSY_RETRY_AFTER,
    PeerSlots,
    StreamLimits,
    TooManyStreams,
    busy_metadata,
    drain,
    peer_host,
    version_floor_metadata,
)
from chordshare.transport.unfinished_codec import unfinished_to_pb
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

T = TypeVar("T")
N = TypeVar("N")
log = logging.getLogger(__name__)

STATUS_OF: dict[Refusal, grpc.StatusCode] = {r: grpc.StatusCode[r.name] for r in Refusal}

# The methods whose chunk messages skip protobuf's copies (`chunk_wire`): their request
# deserializer and response serializer. Every other method uses its protobuf messages'.
CHUNK_CODECS: dict[str, tuple[Callable[[bytes], object], Callable[..., bytes]]] = {
    "PutFile": (chunk_wire.decode_put_request, pb.PutReply.SerializeToString),
    "FetchChunks": (pb.FetchRequest.FromString, chunk_wire.encode_chunk),
}

PutPart = pb.PutRequest | Chunk  # what a put stream's messages decode to


async def _refuse(context: grpc.aio.ServicerContext, err: FileError) -> NoReturn:
    await context.abort(
        STATUS_OF[err.refusal],
        err.message,
        trailing_metadata=version_floor_metadata(err.version_floor),
    )
    raise AssertionError("abort returns by raising") from err


async def _busy(context: grpc.aio.ServicerContext, err: TooManyStreams) -> NoReturn:
    """Refuse a call for load: UNAVAILABLE, with the wait in the trailing metadata."""
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"{err} (in about {BUSY_RETRY_AFTER:g} s)",
        trailing_metadata=busy_metadata(),
    )
    raise AssertionError("abort returns by raising") from err


async def _decode(context: grpc.aio.ServicerContext, decode: Callable[[], T]) -> T:
    """Decode a request's fields, refusing the call with INVALID_ARGUMENT if they are bad."""
    try:
        return decode()
    except ValueError as err:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        raise AssertionError("abort returns by raising") from err


async def _answer(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Await the service, turning its refusal into the matching gRPC status."""
    try:
        return await work
    except FileError as err:
        await _refuse(context, err)


async def _sent(context: grpc.aio.ServicerContext, message: object) -> bool:
    """Write one message of a server stream; False once the caller has gone. A get that is
    interrupted, or that has what it needs from other holders, cancels its streams: that
    is normal, not an error to log (a yielded message would fail inside gRPC, which logs
    it with a traceback)."""
    if context.cancelled():
        return False
    try:
        await context.write(message)
    except Exception as err:  # the send failed in gRPC's core: the call is over either way
        log.debug("a stream's caller went away (%s: %s)", type(err).__name__, err)
        return False
    return True


class PutStalled(Exception):
    """A put stream sent nothing for longer than the node waits."""


async def _next_part(requests: AsyncIterator[PutPart], idle: float) -> PutPart | None:
    """The put stream's next message (None at its end), or PutStalled after `idle` seconds."""
    try:
        async with asyncio.timeout(idle):
            return await anext(requests, None)
    except TimeoutError:
        raise PutStalled(f"the put sent nothing for {idle:g} s and was dropped") from None


def _part_size(part: PutPart) -> int:
    return len(part.data) if isinstance(part, Chunk) else part.ByteSize()


async def _drain(requests: AsyncIterator[PutPart]) -> None:
    """Read what the client still sends before answering (see `limits.drain`)."""
    await drain(requests, _part_size)


class _Trailer:
    """The manifest that closes a put stream whose header said manifest_last."""

    def __init__(self) -> None:
        self.manifest: Manifest | None = None

    def __call__(self) -> Manifest:
        if self.manifest is None:
            raise PutCutOff(Refusal.INVALID_ARGUMENT, "the put stream ended without its manifest")
        return self.manifest


async def _put_chunks(
    requests: AsyncIterator[PutPart], header: PutHeader, idle: float, trailer: _Trailer
) -> AsyncGenerator[tuple[int, bytes]]:
    """The chunks after a put's header (and its closing manifest into `trailer`). A
    malformed part is a FileError, not a ValueError, so it reaches the caller as
    INVALID_ARGUMENT through whatever the service does with it."""
    while (part := await _next_part(requests, idle)) is not None:
        if trailer.manifest is not None:
            raise FileError(Refusal.INVALID_ARGUMENT, "nothing follows a put's manifest")
        if isinstance(part, pb.PutRequest) and part.WhichOneof("part") == "manifest":
            if not header.manifest_last:
                raise FileError(
                    Refusal.INVALID_ARGUMENT,
                    "a put stream ends with a manifest only when its header says manifest_last",
                )
            try:
                trailer.manifest = codec.manifest_from_pb(part.manifest, whole_hash_optional=True)
            except ValueError as err:
                raise FileError(Refusal.INVALID_ARGUMENT, str(err)) from None
            continue
        if not isinstance(part, Chunk):
            raise FileError(
                Refusal.INVALID_ARGUMENT, "a put stream has one header, as its first message"
            )
        try:
            codec.check_chunk_index(part.index, header.manifest)
        except ValueError as err:
            raise FileError(Refusal.INVALID_ARGUMENT, str(err)) from None
        yield part.index, part.data  # type: ignore[misc]  # a view of bytes reads as bytes


class FilesServicer(pb_grpc.FilesServicer):
    def __init__(self, service: FileAnswerer, limits: StreamLimits | None = None) -> None:
        self.service = service
        self.limits = limits or StreamLimits()
        self.puts = PeerSlots(self.limits.puts_per_peer, "puts")
        self.fetches = PeerSlots(self.limits.fetches_per_peer, "chunk streams")

    async def PutFile(
        self, request_iterator: AsyncIterable[PutPart], context: grpc.aio.ServicerContext
    ) -> pb.PutReply:
        requests = aiter(request_iterator)
        try:
            with self.puts.slot(peer_host(context.peer())):
                return await self._put(requests, context)
        except TooManyStreams as err:
            await _drain(requests)
            await _busy(context, err)
        except PutStalled as err:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(err))
        raise AssertionError("abort returns by raising")

    async def _put(
        self, requests: AsyncIterator[PutPart], context: grpc.aio.ServicerContext
    ) -> pb.PutReply:
        idle = self.limits.put_idle
        first = await _next_part(requests, idle)
        if not isinstance(first, pb.PutRequest) or first.WhichOneof("part") != "header":
            await _drain(requests)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "a put stream must start with its header"
            )
        try:
            header = codec.put_header_from_pb(first.header)
        except ValueError as err:
            await _drain(requests)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        trailer = _Trailer()
        async with contextlib.aclosing(_put_chunks(requests, header, idle, trailer)) as chunks:
            try:
                closing = trailer if header.manifest_last else None
                outcome = await self.service.put_file(header, chunks, closing)
            except FileError as err:
                await _drain(requests)
                await _refuse(context, err)
        # An answer before the stream's end (the same bytes were here already) must wait
        # for it too, or the client may see INTERNAL instead of it.
        await _drain(requests)
        return codec.put_outcome_to_pb(outcome)

    async def PutSmallFile(
        self, request: pb.PutSmallRequest, context: grpc.aio.ServicerContext
    ) -> pb.PutReply:
        header = await _decode(context, lambda: codec.put_header_from_pb(request.header))
        manifest = header.manifest
        if header.manifest_last:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "PutSmallFile carries its manifest with its hashes; stream with PutFile to "
                "send them last",
            )
        if manifest.size > SMALL_PUT or len(request.chunks) > len(manifest.chunks):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"PutSmallFile carries files of at most {SMALL_PUT} bytes, each chunk once; "
                "stream larger ones with PutFile",
            )
        chunks = await _decode(
            context, lambda: [codec.put_chunk_from_pb(c, manifest) for c in request.chunks]
        )

        async def given() -> AsyncIterator[tuple[int, bytes]]:
            for chunk in chunks:
                yield chunk

        try:
            with self.puts.slot(peer_host(context.peer())):
                outcome = await _answer(context, self.service.put_file(header, given()))
        except TooManyStreams as err:
            await _busy(context, err)
        return codec.put_outcome_to_pb(outcome)

    async def MissingChunks(
        self, request: pb.MissingChunksRequest, context: grpc.aio.ServicerContext
    ) -> pb.MissingChunksReply:
        digests = await _decode(context, lambda: codec.digests_from_pb(request))
        missing = await _answer(context, self.service.missing_chunks(digests))
        return pb.MissingChunksReply(missing=missing)

    async def FetchChunks(
        self, request: pb.FetchRequest, context: grpc.aio.ServicerContext
    ) -> None:
        sha256, indexes, repair, manifest_id = await _decode(
            context, lambda: codec.fetch_request_from_pb(request)
        )
        try:
            with self.fetches.slot(peer_host(context.peer())):
                # Closed on every exit (a cancelled call included) so the service releases
                # its files.
                stream = self.service.fetch_chunks(sha256, indexes, repair, manifest_id)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for index, data in stream:
                        if not await _sent(context, Chunk(index, data)):
                            return
        except TooManyStreams as err:
            await _busy(context, err)
        except FileError as err:
            await _refuse(context, err)

    async def FindFile(
        self, request: pb.FindFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindFileReply:
        name, inline_up_to, owner_only, manifest_id = await _decode(
            context, lambda: codec.find_request_from_pb(request)
        )
        if not request.unfinished:
            finding = self.service.find_file(name, inline_up_to, owner_only, manifest_id)
            found = await _answer(context, finding)
            return codec.found_file_to_pb(found)
        found, record = await _answer(context, self.service.find_for_put(name, owner_only))
        reply = codec.found_file_to_pb(found)
        if record is not None:
            reply.unfinished.CopyFrom(unfinished_to_pb(record))
        return reply

    async def Offer(
        self, request: pb.OfferRequest, context: grpc.aio.ServicerContext
    ) -> pb.OfferReply:
        versions = await _decode(context, lambda: codec.offer_from_pb(request))
        answer = await _answer(context, self.service.offer(versions))
        return codec.offer_answer_to_pb(answer)

    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteReply:
        name, version, replica, claim = await _decode(
            context, lambda: codec.delete_from_pb(request)
        )
        existed = await _answer(context, self.service.delete(name, version, replica, claim))
        return pb.DeleteReply(existed=existed)

    async def PublishIndex(
        self, request: pb.PublishIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishIndexReply:
        records, ttl = await _decode(context, lambda: index_codec.publish_index_from_pb(request))
        await _answer(context, self.service.publish_index(records, ttl, request.remove))
        return pb.PublishIndexReply()

    async def QueryIndex(
        self, request: pb.QueryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryIndexReply:
        entries = await _answer(context, self.service.query_index(request.key))
        return pb.QueryIndexReply(entries=[index_codec.index_entry_to_pb(e) for e in entries])

    async def PublishLocators(
        self, request: pb.PublishLocatorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishLocatorsReply:
        locators, ttl = await _decode(
            context, lambda: index_codec.publish_locators_from_pb(request)
        )
        await _answer(context, self.service.publish_locators(locators, ttl))
        return pb.PublishLocatorsReply()

    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFilesReply:
        listing = await _answer(context, self.service.list_files())
        return index_codec.file_listing_to_pb(listing)

    async def KeepFile(
        self, request: pb.KeepFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.KeepFileReply:
        name, manifest_id = await _decode(context, lambda: codec.keep_request_from_pb(request))
        outcome = await _answer(context, self.service.keep_file(name, manifest_id))
        return codec.keep_outcome_to_pb(outcome)


def add_files_servicer(servicer: FilesServicer, server: grpc.aio.Server) -> None:
    """Register servicer as the Files service: what the generated
    `add_FilesServicer_to_server` does, with the chunk messages coded by `chunk_wire`."""
    service = pb.DESCRIPTOR.services_by_name["Files"]
    handlers = {}
    for method in service.methods:
        decode, encode = CHUNK_CODECS.get(
            method.name,
            (
                getattr(pb, method.input_type.name).FromString,
                getattr(pb, method.output_type.name).SerializeToString,
            ),
        )
        handlers[method.name] = handler_of_shape(
            method.client_streaming,
            method.server_streaming,
            getattr(servicer, method.name),
            decode,
            encode,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


FILES_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Files"].full_name


def serving_files(make: Callable[[N], FileAnswerer]) -> Callable[[grpc.aio.Server, N], None]:
    """A hook for a node's gRPC server (`NodeServer`'s `services`): serve what make(node)
    returns as the node's Files service."""

    def add(server: grpc.aio.Server, node: N) -> None:
        add_files_servicer(FilesServicer(make(node)), server)

    return add
