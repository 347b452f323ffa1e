"""Requests that do not parse are refused with INVALID_ARGUMENT, not UNKNOWN.

grpc.aio decodes a request before the handler runs, and answers bytes that are not a valid
message with UNKNOWN ("Exception deserializing request!"), which reads like a crash of the
node. This interceptor gives every method a handler that receives the raw bytes, decodes
them itself with the method's own deserializer, and refuses what does not decode with a
status that says so. Handlers then run exactly as before.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from chordshare.transport.handlers import handler_like
from chordshare.transport.limits import drain

Decode = Callable[[bytes], Any]


async def _decoded(raw: bytes, decode: Decode, context: grpc.aio.ServicerContext) -> Any:
    try:
        return decode(raw)
    except Exception as err:  # DecodeError, and whatever a custom deserializer raises
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message: {err}"
        )


async def _decoded_stream(
    raws: AsyncIterable[bytes], decode: Decode, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    stream = aiter(raws)
    async for raw in stream:
        try:
            message = decode(raw)
        except Exception:
            await drain(stream, len)  # the client may still be sending: see limits.drain
            message = await _decoded(raw, decode, context)
        yield message


async def _result(answer: Any) -> Any:
    """A handler's answer, whether it was written as a coroutine or not."""
    return await answer if inspect.isawaitable(answer) else answer


# A method's behaviour: its own, or the checked one that wraps it. The stubs describe the
# synchronous server's shapes (iterators, plain returns); under grpc.aio the same handler
# attributes hold coroutine functions and async generator functions.
Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
# What a server interceptor calls to get the method's own handler; None when no service
# has the method.
ServerContinuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def _stream_stream(behaviour: Behaviour, decode: Decode) -> Behaviour:
    async def checked(
        raws: AsyncIterable[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for reply in behaviour(_decoded_stream(raws, decode, context), context):
            yield reply

    return checked


def _stream_unary(behaviour: Behaviour, decode: Decode) -> Behaviour:
    async def checked(raws: AsyncIterable[bytes], context: grpc.aio.ServicerContext) -> Any:
        return await _result(behaviour(_decoded_stream(raws, decode, context), context))

    return checked


def _unary_stream(behaviour: Behaviour, decode: Decode) -> Behaviour:
    async def checked(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        replies = behaviour(await _decoded(raw, decode, context), context)
        if inspect.isasyncgen(replies):
            async for reply in replies:
                yield reply
        else:  # a handler that writes with context.write and returns
            await _result(replies)

    return checked


def _unary_unary(behaviour: Behaviour, decode: Decode) -> Behaviour:
    async def checked(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await _result(behaviour(await _decoded(raw, decode, context), context))

    return checked


def _checked(handler: grpc.RpcMethodHandler, decode: Decode) -> grpc.RpcMethodHandler:
    if handler.request_streaming and handler.response_streaming:
        checked = _stream_stream(cast(Behaviour, handler.stream_stream), decode)
    elif handler.request_streaming:
        checked = _stream_unary(cast(Behaviour, handler.stream_unary), decode)
    elif handler.response_streaming:
        checked = _unary_stream(cast(Behaviour, handler.unary_stream), decode)
    else:
        checked = _unary_unary(cast(Behaviour, handler.unary_unary), decode)
    return handler_like(handler, checked, handler.response_serializer)


class MalformedRequests(grpc.aio.ServerInterceptor):
    """Refuses requests that do not parse with INVALID_ARGUMENT (see the module)."""

    async def intercept_service(
        self,
        continuation: ServerContinuation,
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return _checked(handler, handler.request_deserializer)
