"""Requests that do not parse are refused with INVALID_ARGUMENT, not UNKNOWN.

grpc.aio decodes a request before the handler runs, and answers bytes that are not a valid
message with UNKNOWN ("Exception deserializing request!"), which reads like a crash of the
node. This interceptor gives every method a handler that receives the raw bytes, decodes
them itself with the method's own deserializer, and refuses what does not decode with a
status that says so. Handlers then run exactly as before.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import grpc

from chordshare.transport.handlers import Continuation, handler_like
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


def _checked(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    decode = handler.request_deserializer
    if handler.request_streaming and handler.response_streaming:
        behaviour = handler.stream_stream

        async def checked(raws: AsyncIterable[bytes], context: Any) -> Any:
            async for reply in behaviour(_decoded_stream(raws, decode, context), context):
                yield reply

    elif handler.request_streaming:
        behaviour = handler.stream_unary

        async def checked(raws: AsyncIterable[bytes], context: Any) -> Any:
            return await _result(behaviour(_decoded_stream(raws, decode, context), context))

    elif handler.response_streaming:
        behaviour = handler.unary_stream

        async def checked(raw: bytes, context: Any) -> Any:
            replies = behaviour(await _decoded(raw, decode, context), context)
            if inspect.isasyncgen(replies):
                async for reply in replies:
                    yield reply
            else:  # a handler that writes with context.write and returns
                await _result(replies)

    else:
        behaviour = handler.unary_unary

        async def checked(raw: bytes, context: Any) -> Any:
            return await _result(behaviour(await _decoded(raw, decode, context), context))

    return handler_like(handler, checked, handler.response_serializer)


class MalformedRequests(grpc.aio.ServerInterceptor):
    """Refuses requests that do not parse with INVALID_ARGUMENT (see the module)."""

    async def intercept_service(
        self,
        continuation: Continuation,
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return _checked(handler)
