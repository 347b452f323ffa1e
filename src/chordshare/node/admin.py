"""The Admin service: what an operator asks of one node itself.

Its one call makes the node leave the ring gracefully. The peer port answers every node of
the ring, and anyone at all on a network without a cluster token, so a leave is taken only
from the node's own host, which a loopback peer address proves, or from a caller with the
cluster token, which the token check proved before the call got here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from urllib.parse import unquote

import grpc

from chordshare.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger(__name__)

ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name


def caller_host(peer: str) -> str:
    """The host of a gRPC peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", the brackets
    maybe percent-encoded): its address without scheme and port; anything else as given."""
    scheme, _, rest = unquote(peer).partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return peer
    if rest.startswith("["):
        return rest[1:].partition("]")[0]
    return rest.rpartition(":")[0] if scheme == "ipv4" else rest


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (an IPv4 one mapped into IPv6 too, as a
    dual-stack listener sees it)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def may_ask_to_leave(peer: str, token_ok: bool) -> bool:
    """Whether the caller at gRPC peer `peer` may make this node leave: from the node's
    own host, or with the network's cluster token (`token_ok`)."""
    on_ip = peer.startswith(("ipv4:", "ipv6:"))
    return token_ok or (on_ip and is_loopback(caller_host(peer)))


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """Admin calls: `leave` starts the node's graceful leave; `token_configured` says that
    the server checks the cluster token, so every call that reaches here carried it."""

    def __init__(self, leave: Callable[[], None], token_configured: bool) -> None:
        self.leave = leave
        self.token_configured = token_configured

    async def Leave(
        self, request: admin_pb2.LeaveRingRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.LeaveRingReply:
        peer = context.peer()
        if not may_ask_to_leave(peer, self.token_configured):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"a leave is taken from this node's own host only, and this call came from "
                f"{caller_host(peer)}: run `chordshare leave` there, or send the node SIGTERM",
            )
        log.info("leaving the ring: %s asked", caller_host(peer))
        self.leave()
        return admin_pb2.LeaveRingReply()
