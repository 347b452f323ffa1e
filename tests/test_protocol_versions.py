"""Nodes of protocol versions that do not meet, on loopback gRPC: a joiner is refused with one
line on both sides and the ring never links to it; a node whose range meets the ring's joins
it, as when a ring upgrades one node at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from waiting import wait_until

from chordshare.chord.invariants import convergence_problems
from chordshare.chord.messages import GetNeighbors, NodeRef, Notify
from chordshare.chord.version import THIS_BUILD, ProtocolRange
from chordshare.node.runtime import JoinError, Timing
from chordshare.node.server import NodeServer, NodeSettings
from chordshare.transport.base import IncompatiblePeer
from chordshare.transport.grpc import GrpcTransport
from chordshare.v1 import chord_pb2 as pb
from chordshare.v1 import chord_pb2_grpc as pb_grpc

FAST = Timing(stabilize=0.1, check_predecessor=0.2, fix_fingers=0.3, join_deadline=2.0)
NEWER = ProtocolRange(THIS_BUILD.newest + 2, THIS_BUILD.newest + 2)  # shares nothing with us


class Ring:
    def __init__(self) -> None:
        self.servers: list[NodeServer] = []

    async def start(self, join: str | None = None, **settings: object) -> NodeServer:
        server = NodeServer(
            NodeSettings(bind="127.0.0.1:0", join=join, timing=FAST, **settings)  # type: ignore[arg-type]
        )
        self.servers.append(server)
        await server.start()
        return server

    def converged(self) -> bool:
        states = {
            s.node.me.address: s.node.state
            for s in self.servers
            if s.server is not None and s.node is not None and s.node.joined
        }
        return len(states) > 1 and not convergence_problems(states, set(states))


@pytest.fixture
async def ring() -> AsyncIterator[Ring]:
    r = Ring()
    yield r
    await asyncio.gather(
        *(s.stop(graceful=False) for s in r.servers if s.server is not None),
        return_exceptions=True,
    )


def linked(server: NodeServer) -> set[str]:
    """Every address the node's routing state points at."""
    assert server.node is not None
    state = server.node.state
    nodes = [*state.successors, state.predecessor, *state.fingers]
    return {n.address for n in nodes if n is not None}


async def test_a_joiner_of_another_protocol_is_refused_in_one_line(
    ring: Ring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chordshare.node.servicer")
    first = await ring.start()
    assert first.node is not None
    second = await ring.start(join=first.node.me.address)
    await wait_until(ring.converged, 10, "a ring of two")

    newer = NodeServer(
        NodeSettings(bind="127.0.0.1:0", join=first.node.me.address, timing=FAST, protocol=NEWER)
    )
    with pytest.raises(JoinError) as refused:
        await newer.start()
    assert newer.node is not None
    joiner = newer.node.me.address
    # The joiner's line speaks from its side, the refusing node's from its own.
    assert str(refused.value) == (
        f"peer {first.node.me.address} speaks chordshare protocol {THIS_BUILD}; "
        f"this node speaks {NEWER}: upgrade the ring together"
    )
    assert (
        f"peer {joiner} speaks chordshare protocol {NEWER}; this node speaks {THIS_BUILD}: "
        "upgrade the ring together"
    ) in caplog.messages

    await asyncio.sleep(FAST.stabilize * 5)  # stabilize rounds that could have met it
    assert ring.converged()
    for server in (first, second):
        assert joiner not in linked(server)


async def test_a_caller_of_another_protocol_changes_nothing(ring: Ring) -> None:
    first = await ring.start()
    assert first.node is not None
    second = await ring.start(join=first.node.me.address)
    await wait_until(ring.converged, 10, "a ring of two")
    target = first.node.me
    before = first.node.state.predecessor
    stranger = NodeRef((target.id - 1) % first.node.space.size, "127.0.0.1:1")
    transport = GrpcTransport(first.node.space, protocol=NEWER, address=stranger.address)
    try:
        # What stabilize sends: the answer would make us its successor, the notify its
        # predecessor (it lies just before the target, closer than its predecessor now).
        for call in (GetNeighbors(target), Notify(target, stranger)):
            with pytest.raises(IncompatiblePeer) as refused:
                await transport.call(call)
            assert refused.value.reason == (
                f"peer {target.address} speaks chordshare protocol {THIS_BUILD}; "
                f"this node speaks {NEWER}: upgrade the ring together"
            )
    finally:
        await transport.close()
    assert first.node.state.predecessor == before
    assert stranger.address not in linked(first)
    assert second.node is not None and second.node.joined

    # A caller that names no version, as every build that sends none, is answered.
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = pb_grpc.ChordStub(channel)
        assert (await stub.Ping(pb.PingRequest(), timeout=5)).node.address == target.address
        neighbors = await stub.GetNeighbors(pb.GetNeighborsRequest(), timeout=5)
        assert neighbors.node.address == target.address
        # A range that runs backwards is no range.
        backwards = pb.Caller(oldest=3, newest=2)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Ping(pb.PingRequest(caller=backwards), timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_node_whose_range_meets_the_ring_joins_it(ring: Ring) -> None:
    first = await ring.start()
    assert first.node is not None
    await ring.start(join=first.node.me.address)
    upgraded = ProtocolRange(THIS_BUILD.oldest, THIS_BUILD.newest + 1)
    newer = await ring.start(join=first.node.me.address, protocol=upgraded)
    await wait_until(ring.converged, 10, "a ring of three, one of them upgraded")
    assert newer.node is not None and newer.node.me.address in linked(first)
