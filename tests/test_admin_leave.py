"""`chordshare leave` over the Admin service: a caller on the node's own host makes it leave
and the ring heals around it; a caller from elsewhere is refused, and so is one without the
network's cluster token when it has one."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import wait_until

from chordshare.chord.invariants import convergence_problems, ring_problems
from chordshare.faces.leave import LeaveError, ask_to_leave
from chordshare.node.admin import caller_host, may_ask_to_leave
from chordshare.node.runtime import Timing
from chordshare.node.server import NodeServer, NodeSettings
from chordshare.transport.security import PeerSecurity
from chordshare.v1 import admin_pb2, admin_pb2_grpc

FAST = Timing(stabilize=0.1, check_predecessor=0.2, fix_fingers=0.3, join_deadline=2.0)
TOKEN = "a-cluster-token-for-the-admin-tests"


class Nodes:
    def __init__(self) -> None:
        self.servers: list[NodeServer] = []
        self.binds: dict[int, str] = {}  # each server's bind address, by id()

    async def start(self, bind: str = "127.0.0.1:0", **settings: object) -> NodeServer:
        server = NodeServer(NodeSettings(bind=bind, timing=FAST, **settings))  # type: ignore[arg-type]
        self.binds[id(server)] = bind
        self.servers.append(server)
        await server.start()
        return server

    async def ring(self, size: int, **settings: object) -> list[NodeServer]:
        first = await self.start(**settings)
        assert first.node is not None
        for _ in range(size - 1):
            await self.start(join=first.node.me.address, **settings)
        await wait_until(self.converged, 15, f"a ring of {size}")
        return self.servers

    @property
    def stopped(self) -> list[str]:
        """The bind addresses of the nodes whose life ended: they left and would stop."""
        return [self.binds[id(s)] for s in self.servers if s.ended.is_set()]

    def joined(self) -> dict:
        return {
            s.node.me.address: s.node.state
            for s in self.servers
            if s.server is not None and s.node is not None and s.node.joined
        }

    def converged(self) -> bool:
        states = self.joined()
        return not convergence_problems(states, set(states))


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    n = Nodes()
    yield n
    await asyncio.gather(
        *(s.stop(graceful=False) for s in n.servers if s.server is not None),
        return_exceptions=True,
    )


def address(server: NodeServer) -> str:
    assert server.node is not None
    return server.node.me.address


async def leave(node: str, security: PeerSecurity) -> None:
    await asyncio.to_thread(ask_to_leave, node, security)


async def test_a_leave_from_loopback_takes_the_node_off_and_the_ring_heals(
    nodes: Nodes,
) -> None:
    first, leaving, third = await nodes.ring(3)
    gone = address(leaving)
    await leave(gone, PeerSecurity())
    await wait_until(lambda: nodes.stopped == ["127.0.0.1:0"], 10, "the leave to finish")
    assert leaving.node is not None and not leaving.node.joined
    states = nodes.joined()
    assert set(states) == {address(first), address(third)}
    # Relinked by the leave notices at once, not after stabilize found it gone.
    assert ring_problems(states, set(states)) == []
    await wait_until(nodes.converged, 10, "the two left to converge")

    # Asking again changes nothing.
    await leave(gone, PeerSecurity())
    await asyncio.sleep(0.1)
    assert nodes.stopped == ["127.0.0.1:0"]


async def test_without_the_cluster_token_a_leave_is_refused_even_from_loopback(
    nodes: Nodes,
) -> None:
    security = PeerSecurity(token=TOKEN)
    first, second = await nodes.ring(2, security=security)
    for wrong in (PeerSecurity(), PeerSecurity(token=TOKEN[::-1])):
        with pytest.raises(LeaveError) as refused:
            await leave(address(second), wrong)
        assert str(refused.value).startswith(f"{address(second)}: this network needs its cluster")
        assert "\n" not in str(refused.value)
    await asyncio.sleep(FAST.stabilize * 2)
    assert nodes.stopped == [] and second.node is not None and second.node.joined

    await leave(address(second), security)
    await wait_until(lambda: len(nodes.stopped) == 1, 10, "the leave with the token")
    assert set(nodes.joined()) == {address(first)}


def global_ipv4() -> str | None:
    """An IPv4 address of this host beyond loopback, if it has one."""
    if shutil.which("ip") is None:
        return None
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for word in shown:
        host = word.partition("/")[0]
        try:
            if not ipaddress.IPv4Address(host).is_loopback:
                return host
        except ValueError:
            continue
    return None


async def test_a_leave_from_another_address_is_refused(nodes: Nodes) -> None:
    host = global_ipv4()
    if host is None:
        pytest.skip("this host has no address beyond loopback (the pure rule is tested below)")
    server = await nodes.start(bind=f"{host}:0")
    node = address(server)
    # Called at that address, the call comes from it, not from loopback.
    with pytest.raises(LeaveError) as refused:
        await leave(node, PeerSecurity())
    assert str(refused.value) == (
        f"{node}: a leave is taken from this node's own host only, and this call came from "
        f"{host}: run `chordshare leave` there, or send the node SIGTERM"
    )
    async with grpc.aio.insecure_channel(node) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await admin_pb2_grpc.AdminStub(channel).Leave(admin_pb2.LeaveRingRequest(), timeout=5)
        assert raw.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await asyncio.sleep(0.1)
    assert nodes.stopped == [] and server.node is not None and server.node.joined


async def test_a_node_on_every_interface_is_asked_again_on_loopback(nodes: Nodes) -> None:
    host = global_ipv4()
    if host is None:
        pytest.skip("this host has no address beyond loopback to advertise")
    with socket.create_server(("0.0.0.0", 0)) as probe:
        port = probe.getsockname()[1]
    server = await nodes.start(bind=f"0.0.0.0:{port}", advertise=f"{host}:{port}")
    assert address(server) == f"{host}:{port}"
    await leave(f"{host}:{port}", PeerSecurity())
    await wait_until(lambda: nodes.stopped == [f"0.0.0.0:{port}"], 10, "the leave to finish")


async def test_nothing_listening_is_one_line() -> None:
    with pytest.raises(LeaveError) as refused:
        await leave("127.0.0.1:1", PeerSecurity())
    line = str(refused.value)
    assert line.startswith("127.0.0.1:1: ") and "\n" not in line


# The rule itself, on the peer strings gRPC gives.

ports = st.integers(1, 65535)
loopback_v4 = st.integers(0x7F000000, 0x7FFFFFFF).map(ipaddress.IPv4Address)
other_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(lambda a: not a.is_loopback)


def loopback(address: ipaddress.IPv6Address) -> bool:
    mapped = address.ipv4_mapped
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


other_v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address).filter(lambda a: not loopback(a))


@given(loopback_v4, ports)
def test_loopback_ipv4_callers_may_ask(host: ipaddress.IPv4Address, port: int) -> None:
    assert may_ask_to_leave(f"ipv4:{host}:{port}", token_ok=False)
    assert may_ask_to_leave(f"ipv6:[::ffff:{host}]:{port}", token_ok=False)  # dual stack


@given(other_v4, ports)
def test_other_ipv4_callers_need_the_token(host: ipaddress.IPv4Address, port: int) -> None:
    peer = f"ipv4:{host}:{port}"
    assert caller_host(peer) == str(host)
    assert not may_ask_to_leave(peer, token_ok=False)
    assert may_ask_to_leave(peer, token_ok=True)


@given(other_v6, ports, st.booleans())
def test_other_ipv6_callers_need_the_token(
    host: ipaddress.IPv6Address, port: int, encoded: bool
) -> None:
    peer = f"ipv6:%5B{host}%5D:{port}" if encoded else f"ipv6:[{host}]:{port}"
    assert caller_host(peer) == str(host)
    assert not may_ask_to_leave(peer, token_ok=False)
    assert may_ask_to_leave(peer, token_ok=True)


@given(ports)
def test_ipv6_loopback_may_ask(port: int) -> None:
    assert may_ask_to_leave(f"ipv6:[::1]:{port}", token_ok=False)
    assert may_ask_to_leave(f"ipv6:%5B::1%5D:{port}", token_ok=False)


@given(st.text())
def test_anything_else_needs_the_token(peer: str) -> None:
    if not peer.startswith(("ipv4:", "ipv6:")):
        assert not may_ask_to_leave(peer, token_ok=False)
    assert may_ask_to_leave(peer, token_ok=True)
