"""The ring's own calls are always admitted; every other call takes a slot of a share.

gRPC's own cap on calls under way (`maximum_concurrent_rpcs`) counts every call alike: a
flood of file calls filled it, the node answered its neighbours' Ping, FindStep and Notify
with RESOURCE_EXHAUSTED, and they suspected it and dropped it from the ring. Here the ring's
calls (Chord but Lookup, Admin, health Check and List) pass uncounted: they are cheap unary
calls that end by themselves, and a peer's stream cap bounds how many it sends at once.
Every other call (Files, Lookup, which walks the ring for a client, reflection) holds a slot
of `limits.CALL_SHARE` until gRPC has finished it, and health Watch one of
`limits.WATCH_SHARE`. A call beyond its share is refused as busy: UNAVAILABLE, with the wait
in the trailing metadata, as the file servicer refuses a peer over its own stream caps, so
callers wait and try again rather than count the node dead.

A slot is given back when gRPC reports the call done, not when its handler returns: a
stream whose caller stopped reading keeps its buffers in gRPC until then, and they must
keep counting.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from chordshare.transport import limits
from chordshare.transport.handlers import handler_of_shape
from chordshare.transport.limits import BUSY_RETRY_AFTER, busy_metadata, drain
from chordshare.v1 import admin_pb2, chord_pb2

CHORD = chord_pb2.DESCRIPTOR.services_by_name["Chord"].full_name
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
HEALTH = "grpc.health.v1.Health"
# The calls a client makes of one node that are not the ring's maintenance: a lookup asks
# other nodes on its caller's behalf, for seconds at worst.
CLIENT_CHORD_CALLS = frozenset({"Lookup"})
HEALTH_CHECKS = frozenset({"Check", "List"})

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
ServerContinuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def is_ring_call(method: str) -> bool:
    """Whether a method ("/package.Service/Name") is one of the calls the ring depends on."""
    service, _, name = method.removeprefix("/").partition("/")
    if service == CHORD:
        return name not in CLIENT_CHORD_CALLS
    if service == HEALTH:
        return name in HEALTH_CHECKS
    return service == ADMIN


class Share:
    """Slots for calls under way; one more than `limit` is refused."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.under_way = 0
        self.refused = 0

    def take(self, context: grpc.aio.ServicerContext) -> bool:
        """Take a slot until the call is done (False, and nothing taken, when full)."""
        if self.under_way >= self.limit:
            self.refused += 1
            return False
        self.under_way += 1  # no await between the test and this: nothing else runs
        # The stubs type the callback as a class of theirs; any callable works.
        context.add_done_callback(cast(Any, self._give_back))
        return True

    def _give_back(self, _context: object) -> None:
        self.under_way -= 1


def _size(item: object) -> int:
    """Bytes of a request message, as it came off the wire or decoded."""
    if isinstance(item, bytes | bytearray | memoryview):
        return len(item)
    byte_size = getattr(item, "ByteSize", None)
    return byte_size() if callable(byte_size) else 0


async def _refuse(share: Share, request: Any, streaming: bool, context: Any) -> None:
    if streaming:  # what the caller still sends is read first: see limits.drain
        await drain(cast(AsyncIterator[Any], aiter(request)), _size)
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"this node has {share.under_way} {share.what} under way, the most it takes; try "
        f"again in about {BUSY_RETRY_AFTER:g} s",
        trailing_metadata=busy_metadata(),
    )


async def _result(answer: Any) -> Any:
    return await answer if inspect.isawaitable(answer) else answer


def _counted(handler: grpc.RpcMethodHandler, share: Share) -> grpc.RpcMethodHandler:
    """The same handler, run only once it has a slot of `share`."""
    streaming, replying = handler.request_streaming, handler.response_streaming
    if streaming:
        inner = handler.stream_stream if replying else handler.stream_unary
    else:
        inner = handler.unary_stream if replying else handler.unary_unary

    async def answered(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not share.take(context):
            await _refuse(share, request, streaming, context)
        return await _result(cast(Behaviour, inner)(request, context))

    async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if not share.take(context):
            await _refuse(share, request, streaming, context)
        replies = cast(Behaviour, inner)(request, context)
        if isinstance(replies, AsyncIterable):
            async for reply in replies:
                yield reply
        else:  # a handler that writes with context.write and returns
            await _result(replies)

    return handler_of_shape(
        streaming,
        replying,
        streamed if replying else answered,
        handler.request_deserializer,
        handler.response_serializer,
    )


class CallShare(grpc.aio.ServerInterceptor):
    """Admits the ring's calls always and the others within their shares (see the module).
    Goes before `MalformedRequests`, so a refused call is not decoded."""

    def __init__(self, calls: int | None = None, watches: int | None = None) -> None:
        self.calls = Share(limits.CALL_SHARE if calls is None else calls, "calls")
        self.watches = Share(limits.WATCH_SHARE if watches is None else watches, "health watches")

    def share_of(self, method: str) -> Share | None:
        """The share a call of `method` counts in; None for the ring's own."""
        if is_ring_call(method):
            return None
        return self.watches if method == f"/{HEALTH}/Watch" else self.calls

    async def intercept_service(
        self,
        continuation: ServerContinuation,
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        share = self.share_of(details.method)
        if handler is None or share is None:
            return handler
        return _counted(handler, share)
