"""Real nodes on loopback gRPC in one process: joining, converging, leaving, refusing,
the membership hints that let lookups take one round trip, and a resumed node's keys."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from waiting import wait_until

from chordshare.chord.invariants import IdealRouting, convergence_problems, ring_problems
from chordshare.chord.membership import MemberEvent, MemberState
from chordshare.chord.messages import Claim, GetNeighbors, Ping
from chordshare.ids import IdSpace
from chordshare.node.runtime import JoinError, Timing
from chordshare.node.server import NodeServer, NodeSettings, StartError
from chordshare.v1 import chord_pb2 as pb
from chordshare.v1 import chord_pb2_grpc as pb_grpc

FAST = Timing(stabilize=0.1, check_predecessor=0.2, fix_fingers=0.3, join_deadline=2.0)


def states_of(servers: list[NodeServer]) -> dict:
    return {s.node.me.address: s.node.state for s in servers if s.node and s.node.joined}


class Cluster:
    def __init__(self) -> None:
        self.servers: list[NodeServer] = []

    async def start(self, **settings: object) -> NodeServer:
        server = NodeServer(
            NodeSettings(bind="127.0.0.1:0", timing=FAST, **settings)  # type: ignore[arg-type]
        )
        self.servers.append(server)
        await server.start()
        return server

    def live(self) -> list[NodeServer]:
        return [s for s in self.servers if s.server is not None and s.node and s.node.joined]

    def converged(self) -> bool:
        states = states_of(self.live())
        return not convergence_problems(states, set(states))


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    yield c
    await asyncio.gather(
        *(s.stop(graceful=False) for s in c.servers if s.server is not None),
        return_exceptions=True,
    )


async def test_sixteen_nodes_joining_at_once_converge(cluster: Cluster) -> None:
    first = await cluster.start()
    assert first.node is not None
    await asyncio.gather(*(cluster.start(join=first.node.me.address) for _ in range(15)))
    await wait_until(cluster.converged, 30, "16 nodes to converge")
    live = cluster.live()
    states = states_of(live)
    assert ring_problems(states, set(states)) == []
    ideal = IdealRouting.of([s.node.me for s in live if s.node], first.node.space)
    space = first.node.space
    for i, server in enumerate(live):
        assert server.node is not None
        key = space.hash(f"file-{i}")
        result = await server.node.lookup(key)
        assert result.owner == ideal.owner(key)
        assert result.timeouts == 0


async def test_seed_teaching_ring_fingers(cluster: Cluster) -> None:
    first = await cluster.start(bits=5, node_id=20)
    assert first.node is not None
    for ident in (28, 5, 1):
        await cluster.start(bits=5, node_id=ident, join=first.node.me.address)
    await wait_until(cluster.converged, 20, "the teaching ring to converge")
    one = next(s.node for s in cluster.live() if s.node and s.node.me.id == 1)
    assert one is not None
    assert [f.id for f in one.state.fingers if f] == [5, 5, 5, 20, 20]


async def test_graceful_leave_relinks_at_once(cluster: Cluster) -> None:
    first = await cluster.start(bits=5, node_id=20)
    assert first.node is not None
    for ident in (28, 5, 1):
        await cluster.start(bits=5, node_id=ident, join=first.node.me.address)
    await wait_until(cluster.converged, 20, "the teaching ring to converge")
    by_id = {s.node.me.id: s for s in cluster.live() if s.node}
    for s in by_id.values():
        assert s.node is not None
        await s.node.stop_maintenance()  # nothing but the leave notices may relink
    await by_id[20].stop(graceful=True)
    five, twenty_eight = by_id[5].node, by_id[28].node
    assert five is not None and twenty_eight is not None
    assert five.state.successor.id == 28
    assert twenty_eight.state.predecessor is not None
    assert twenty_eight.state.predecessor.id == 5
    states = states_of([by_id[i] for i in (1, 5, 28)])
    assert ring_problems(states, set(states)) == []


async def test_duplicate_id_is_refused_naming_the_holder(cluster: Cluster) -> None:
    first = await cluster.start(bits=8, node_id=42)
    assert first.node is not None
    with pytest.raises(JoinError, match=first.node.me.address):
        await cluster.start(bits=8, node_id=42, join=first.node.me.address)
    assert first.node.state.alone  # the ring is untouched


async def test_bad_settings_are_refused(cluster: Cluster) -> None:
    with pytest.raises(StartError, match="outside"):
        await cluster.start(bits=5, node_id=32)
    with pytest.raises(StartError, match="bits"):
        await cluster.start(bits=2)
    with pytest.raises(StartError, match="--advertise"):
        await NodeServer(NodeSettings(bind="0.0.0.0:0")).start()
    with pytest.raises(StartError, match="malformed"):
        await NodeServer(NodeSettings(bind="localhost")).start()


async def test_unreachable_or_mismatched_join_fails_fast(cluster: Cluster) -> None:
    first = await cluster.start(bits=8)
    assert first.node is not None
    started = time.monotonic()
    with pytest.raises(JoinError, match="cannot reach"):
        await cluster.start(join="127.0.0.1:1")
    with pytest.raises(JoinError, match="8-bit"):
        await cluster.start(bits=16, join=first.node.me.address)
    assert time.monotonic() - started < 5


class LyingChord(pb_grpc.ChordServicer):
    """Answers Ping properly, then every other call with ids that do not fit the ring."""

    async def Ping(self, request: pb.PingRequest, context: object) -> pb.PingReply:
        return pb.PingReply(node=pb.Node(id=b"\x07", address=self.address), bits=5, joined=True)

    async def FindStep(self, request: pb.FindStepRequest, context: object) -> pb.FindStepReply:
        return pb.FindStepReply(done=True, nodes=[pb.Node(id=b"\xff" * 30, address="x:1")])

    async def GetNeighbors(self, request: object, context: object) -> pb.Neighbors:
        return pb.Neighbors(node=pb.Node(id=b"\xff" * 30, address="x:1"))


async def test_a_node_answering_garbage_is_a_clear_error(cluster: Cluster) -> None:
    liar = LyingChord()
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    liar.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    pb_grpc.add_ChordServicer_to_server(liar, server)
    await server.start()
    try:
        with pytest.raises(JoinError, match="malformed"):
            await cluster.start(bits=5, node_id=3, join=f"127.0.0.1:{port}")
    finally:
        await server.stop(0)


async def test_malformed_requests_get_invalid_argument(cluster: Cluster) -> None:
    node = await cluster.start(bits=5, node_id=3)
    assert node.node is not None
    async with grpc.aio.insecure_channel(node.node.me.address) as channel:
        stub = pb_grpc.ChordStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FindStep(pb.FindStepRequest(key=b"\x01\x02"), timeout=2)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Lookup(pb.LookupRequest(key=bytes([40])), timeout=2)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "outside" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Notify(pb.NotifyRequest(candidate=pb.Node(id=b"\x01")), timeout=2)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The node still answers properly afterwards.
        reply = await stub.Lookup(pb.LookupRequest(key=bytes([9])), timeout=2)
        assert reply.owner.address == node.node.me.address


async def test_health_and_reflection(cluster: Cluster) -> None:
    first = await cluster.start()
    assert first.node is not None
    async with grpc.aio.insecure_channel(first.node.me.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(
            health_pb2.HealthCheckRequest(service="chordshare.v1.Chord"), timeout=2
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = set()
        async for reply in replies:
            names |= {s.name for s in reply.list_services_response.service}
            break
        assert {"chordshare.v1.Chord", "grpc.health.v1.Health"} <= names
        await first.node.leave()
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_ids_hash_the_advertised_address(cluster: Cluster) -> None:
    server = await cluster.start()
    assert server.node is not None
    assert server.node.me.id == IdSpace().hash(server.node.me.address)


# Membership hints: the gossip rides the ring protocol's calls.


def hints_hold(servers: list[NodeServer]) -> bool:
    want = sorted((s.node.me for s in servers if s.node), key=lambda n: n.id)
    return all(
        s.node is not None and s.node.hints is not None and s.node.hints.table.alive() == want
        for s in servers
    )


async def test_lookups_over_grpc_take_one_round_trip(cluster: Cluster) -> None:
    first = await cluster.start()
    assert first.node is not None
    for _ in range(5):
        await cluster.start(join=first.node.me.address)
    servers = cluster.live()
    await wait_until(cluster.converged, 20, "the ring to converge")
    await wait_until(lambda: hints_hold(servers), 10, "every table to hold the ring")
    nodes = [s.node for s in servers if s.node is not None]
    ideal = IdealRouting.of([n.me for n in nodes], nodes[0].space)
    rng = random.Random(5)
    for _ in range(40):
        asker = rng.choice(nodes)
        key = rng.randrange(asker.space.size)
        result = await asker.lookup(key)
        assert result.owner == ideal.owner(key)
        assert result.hops == (0 if result.owner == asker.me else 1)


async def test_malformed_gossip_gets_invalid_argument(cluster: Cluster) -> None:
    server = await cluster.start(bits=8, node_id=3)
    assert server.node is not None
    caller = pb.Caller(address="127.0.0.1:9", oldest=1, newest=2)
    bad = [
        pb.MemberEvent(id=b"\x01\x02", address="127.0.0.1:1", state=pb.MemberEvent.ALIVE),
        pb.MemberEvent(id=b"\x05", address="", state=pb.MemberEvent.ALIVE),
        pb.MemberEvent(id=b"\x05", address="127.0.0.1:1"),
    ]
    async with grpc.aio.insecure_channel(server.node.me.address) as channel:
        stub = pb_grpc.ChordStub(channel)
        for event in bad:
            request = pb.PingRequest(caller=caller, gossip=pb.Gossip(events=[event]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Ping(request, timeout=2)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        digest = pb.Gossip(digest=pb.MemberDigest(count=1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Ping(pb.PingRequest(caller=caller, gossip=digest), timeout=2)
        assert "arcs" in (err.value.details() or "")
        # Good gossip is taken, and a digest is answered with the node's entries.
        good = pb.MemberEvent(id=b"\x05", address="127.0.0.1:1", state=pb.MemberEvent.ALIVE)
        asked = pb.Gossip(events=[good], digest=pb.MemberDigest(count=0, arcs=[0] * 64))
        reply = await stub.Ping(pb.PingRequest(caller=caller, gossip=asked), timeout=2)
        assert server.node.hints is not None and server.node.hints.table.knows_alive(5)
        told = {(e.id, e.address) for e in reply.gossip.events}
        assert (b"\x03", server.node.me.address) in told


async def test_a_probes_answer_carries_gossip_too(cluster: Cluster) -> None:
    """A Ping sent by address alone (a probe, a join's hello) hears the changes its answer
    carries: the peer counts them as told."""
    first = await cluster.start()
    assert first.node is not None
    second = await cluster.start(join=first.node.me.address)
    await wait_until(cluster.converged, 20, "the ring to converge")
    a, b = first.node, second.node
    assert a is not None and b is not None and a.hints is not None and b.hints is not None
    await a.stop_maintenance()
    await b.stop_maintenance()
    news = MemberEvent(12345, "127.0.0.1:9", 0, MemberState.ALIVE)
    b.hints.table.apply([news], 0.0, None)
    assert not a.hints.table.knows_alive(12345)
    await a.transport.hello(b.me.address, 2.0)
    assert a.hints.table.knows_alive(12345)


async def test_a_silent_predecessor_gets_its_keys_back_with_its_first_call(
    cluster: Cluster,
) -> None:
    """A node back from a pause calls its successor first thing: that call hands its keys
    back, before the successor's own probe of it (no maintenance runs here to send one).
    A call from any other node hands back nothing."""
    first = await cluster.start()
    assert first.node is not None
    for _ in range(2):
        await cluster.start(join=first.node.me.address)
    await wait_until(cluster.converged, 20, "the ring to converge")
    nodes = [s.node for s in cluster.live() if s.node is not None]
    for node in nodes:
        await node.stop_maintenance()
    resumed = nodes[0]
    successor = next(n for n in nodes if n.me == resumed.state.successor)
    other = next(n for n in nodes if n is not resumed and n is not successor)
    key = resumed.me.id
    successor.state.absorb(resumed.me, time.monotonic())  # as when it was found silent
    successor.state.predecessor = other.me  # and its predecessor notified
    assert successor.claim(key) is Claim.OWNER
    await other.calls.call(Ping(successor.me))
    assert successor.claim(key) is Claim.OWNER
    await resumed.calls.call(GetNeighbors(successor.me))
    assert successor.state.predecessor == resumed.me
    assert successor.claim(key) is Claim.NOT_OWNER
    assert (await other.lookup(key)).owner == resumed.me
