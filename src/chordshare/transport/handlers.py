"""What the server interceptors build on: a method handler of a given call shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# What a server interceptor calls to get the method's own handler.
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]

# By (request streaming, response streaming).
_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def handler_of_shape(
    request_streaming: bool,
    response_streaming: bool,
    behaviour: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler running `behaviour` for a method of this call shape."""
    factory = _FACTORIES[(request_streaming, response_streaming)]
    return factory(behaviour, request_deserializer, response_serializer)


def handler_like(
    kind: grpc.RpcMethodHandler,
    behaviour: Callable[..., Any],
    response_serializer: Callable[[Any], bytes] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler running `behaviour`, of the same call shape as `kind`. Requests reach it as
    they came off the wire (bytes): no request deserializer."""
    return handler_of_shape(
        kind.request_streaming, kind.response_streaming, behaviour, None, response_serializer
    )
