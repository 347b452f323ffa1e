"""Asking a node to leave the ring: the Admin call on its peer port, which a node takes
from its own machine (loopback) or with the network's cluster token."""

from __future__ import annotations

import asyncio

import grpc

from chordshare.transport.address import normalize_address
from chordshare.transport.grpc import describe_rpc_error
from chordshare.transport.security import PeerSecurity
from chordshare.v1.admin_pb2 import LeaveRingRequest
from chordshare.v1.admin_pb2_grpc import AdminStub
from chordshare.v1.chord_pb2 import PingRequest
from chordshare.v1.chord_pb2_grpc import ChordStub

LEAVE_DEADLINE = 10.0  # seconds; the node answers at once and leaves afterwards
PROBE_DEADLINE = 2.0  # for a node on loopback


class LeaveError(Exception):
    """The node could not be asked to leave; the message says why and what to do."""


def ask_to_leave(node: str, security: PeerSecurity) -> None:
    """Ask the node at peer address `node` to leave the ring and exit, with the Admin call
    on its peer port. The node takes it from its own host, over loopback (refused at the
    address it advertises, it is asked again there), or with the network's cluster token.
    `security` is how to reach it. Blocking."""
    try:
        asyncio.run(_leave(node, security))
    except grpc.aio.AioRpcError as err:
        raise LeaveError(f"{node}: {_why_not(err)}") from None


async def _leave(node: str, security: PeerSecurity) -> None:
    try:
        await _ask(node, security)
    except grpc.aio.AioRpcError as err:
        # A node that listens on every interface and advertises its host's address sees a
        # call to that address come from it, not from loopback: ask it on loopback instead.
        if err.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        local = await _on_loopback(node, security)
        if local is None:
            raise
        await _ask(local, security)


async def _ask(address: str, security: PeerSecurity) -> None:
    channel = security.channel(address, [])
    try:
        await AdminStub(channel).Leave(LeaveRingRequest(), timeout=LEAVE_DEADLINE)
    finally:
        await channel.close()


async def _on_loopback(node: str, security: PeerSecurity) -> str | None:
    """A loopback address at which the node advertised as `node` answers too, if any (only
    the node itself: another one may listen on the same port there)."""
    try:
        wanted = normalize_address(node)
    except ValueError:
        return None
    port = wanted.rpartition(":")[2]
    for candidate in (f"127.0.0.1:{port}", f"[::1]:{port}"):
        channel = security.channel(candidate, [])
        try:
            hello = await ChordStub(channel).Ping(PingRequest(), timeout=PROBE_DEADLINE)
        except grpc.aio.AioRpcError:
            continue
        finally:
            await channel.close()
        if hello.node.address == wanted:
            return candidate
    return None


def _why_not(err: grpc.aio.AioRpcError) -> str:
    """The node's refusal, or what kept the call from it, with what to do."""
    code = err.code()
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return err.details() or "refused"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (
            "this network needs its cluster token: give --cluster-token-file before the "
            "command, or CHORDSHARE_CLUSTER_TOKEN_FILE"
        )
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "it has no Admin service (an older chordshare): send it SIGTERM"
    return f"{describe_rpc_error(err)}: is a node running there?"
