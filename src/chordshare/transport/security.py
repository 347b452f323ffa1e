"""Who may call a node: a cluster token on every peer call, and optional mutual TLS.

A private network shares one secret token. Every call a node or client makes carries it in
the `authorization` metadata, and a server interceptor refuses a call without it with
UNAUTHENTICATED before any handler runs, so a stranger learns nothing, not even ids. Only
grpc.health.v1 stays open, for orchestrators' probes: it tells whether the node is serving
and nothing else.

Mutual TLS encrypts the links and admits only holders of a certificate signed by the
network's CA. Node certificates name `TLS_SERVER_NAME` (besides any host names given), and
every channel checks the server's certificate against that name: membership is proven by
the CA's signature, not by an address, since nodes reach each other at whatever address
they advertise (see SECURITY.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from chordshare.transport.handlers import handler_like

TOKEN_METADATA = "authorization"
TOKEN_SCHEME = "Bearer "
TLS_SERVER_NAME = "chordshare-node"
# Calls answered without a token: health probes only.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
MIN_TOKEN_LENGTH = 16

# What a server interceptor calls to get the method's own handler; None when no service
# has the method.
ServerContinuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class SecurityError(Exception):
    """Security settings that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """PEM bytes of this node's certificate and key and of the network's CA."""

    cert: bytes
    key: bytes
    ca: bytes


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise SecurityError(f"{what} {path}: {err.strerror or err}") from None


def load_token(value: str | None, file: Path | None, what: str) -> str | None:
    """A token (`what` names it in messages) given as a value or in a file, not both, and
    checked; None if neither is given. A file holds it on its first line."""
    if value is not None and file is not None:
        raise SecurityError(f"give the {what} or a {what} file, not both")
    if file is not None:
        text = _read(file, f"{what} file").decode("utf-8", "replace").strip()
        value = text.splitlines()[0].strip() if text else ""
    if value is None:
        return None
    if len(value) < MIN_TOKEN_LENGTH:
        raise SecurityError(
            f"the {what} must be at least {MIN_TOKEN_LENGTH} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if not value.isprintable() or value != value.strip():
        raise SecurityError(f"the {what} must be printable, without surrounding spaces")
    return value


@dataclass(frozen=True, slots=True)
class PeerSecurity:
    """How this process authenticates to peers and checks them. The default is open."""

    token: str | None = None
    tls: TlsMaterial | None = None

    @classmethod
    def load(
        cls,
        token: str | None = None,
        token_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_ca: Path | None = None,
    ) -> PeerSecurity:
        """Settings from values and files; SecurityError says what is wrong with them."""
        token = load_token(token, token_file, "cluster token")
        tls = None
        paths = {"--tls-cert": tls_cert, "--tls-key": tls_key, "--tls-ca": tls_ca}
        if any(p is not None for p in paths.values()):
            missing = [flag for flag, p in paths.items() if p is None]
            if missing:
                raise SecurityError(
                    "mutual TLS needs --tls-cert, --tls-key and --tls-ca; "
                    f"missing {', '.join(missing)}"
                )
            assert tls_cert is not None and tls_key is not None and tls_ca is not None
            tls = TlsMaterial(
                cert=_read(tls_cert, "--tls-cert"),
                key=_read(tls_key, "--tls-key"),
                ca=_read(tls_ca, "--tls-ca"),
            )
        return cls(token=token, tls=tls)

    @property
    def describe(self) -> str:
        parts = (["cluster token"] if self.token else []) + (["mutual TLS"] if self.tls else [])
        return " and ".join(parts) if parts else "open (no token, no TLS)"

    # The server side

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [TokenCheck(self.token)] if self.token else []

    def add_port(self, server: grpc.aio.Server, bind: str) -> int:
        """Listen on `bind` with this security; the port, or 0 if it could not listen."""
        if self.tls is None:
            return server.add_insecure_port(bind)
        credentials = grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)],
            root_certificates=self.tls.ca,
            require_client_auth=True,
        )
        return server.add_secure_port(bind, credentials)

    # The client side

    def channel(self, address: str, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
        """A channel to a peer that carries the token and speaks TLS when configured."""
        interceptors = token_interceptors(self.token) if self.token else None
        if self.tls is None:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        credentials, tls_options = self._tls_channel_settings(options)
        return grpc.aio.secure_channel(
            address, credentials, options=tls_options, interceptors=interceptors
        )

    def _tls_channel_settings(
        self, options: Sequence[tuple[str, Any]]
    ) -> tuple[grpc.ChannelCredentials, list[tuple[str, Any]]]:
        """This node's TLS credentials, and options that check the peer's certificate
        against the name every node certificate carries."""
        assert self.tls is not None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca,
            private_key=self.tls.key,
            certificate_chain=self.tls.cert,
        )
        return credentials, [*options, ("grpc.ssl_target_name_override", TLS_SERVER_NAME)]


def _denial(kind: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `kind` that refuses the call."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this network needs its cluster token")

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(_request, context)
        yield  # pragma: no cover - abort raised

    return handler_like(kind, refuse_stream if kind.response_streaming else refuse)


class TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses, with UNAUTHENTICATED, every call that does not carry the cluster token."""

    def __init__(self, token: str) -> None:
        self._expected = (TOKEN_SCHEME + token).encode()

    async def intercept_service(
        self,
        continuation: ServerContinuation,
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        given = b""
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_METADATA:
                given = value.encode() if isinstance(value, str) else value
                break
        if hmac.compare_digest(given, self._expected):
            return handler
        return _denial(handler)


class _TokenMetadata:
    """Puts the cluster token on a call's metadata."""

    def __init__(self, token: str) -> None:
        self._value = TOKEN_SCHEME + token

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(tuple(details.metadata) if details.metadata else ()))
        metadata.add(TOKEN_METADATA, self._value)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# One class per call shape: grpc.aio files an interceptor under the first shape it
# implements only, so one class implementing all four would see unary-unary calls alone.
class _UnaryUnaryToken(_TokenMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._with_token(details), request)


class _UnaryStreamToken(_TokenMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._with_token(details), request)


class _StreamUnaryToken(_TokenMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._with_token(details), request_iterator)


class _StreamStreamToken(_TokenMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._with_token(details), request_iterator)


def token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that put `token` on every call of a channel, whatever its shape."""
    return [
        kind(token)
        for kind in (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)
    ]
