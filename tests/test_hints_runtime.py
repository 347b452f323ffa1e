"""Membership hints in node runtimes on the in-memory transport: tables fill from the
gossip riding the maintenance calls, lookups take one round trip, and a join, a graceful
leave and a crash reach every table."""

from __future__ import annotations

import random

from memring import converged, memory_ring, start_memory_node
from waiting import wait_until

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.membership import MemberState
from chordshare.node.runtime import ChordNode
from chordshare.transport.memory import MemoryNetwork


def tables_hold(nodes: list[ChordNode], members: list[ChordNode]) -> bool:
    """Every node's hints name exactly `members` as alive."""
    want = sorted((m.me for m in members), key=lambda n: n.id)
    return all(n.hints is not None and n.hints.table.alive() == want for n in nodes)


async def lookups_check(nodes: list[ChordNode], rng: random.Random, count: int = 60) -> None:
    """Lookups of random keys from random nodes, each checked against the ideal owner;
    those the asker does not own take one round trip, unless a call timed out (a busy
    test machine). Chord alone would take one only for keys within the asker's list."""
    ideal = IdealRouting.of([n.me for n in nodes], nodes[0].space)
    remote = one_hop = 0
    for _ in range(count):
        asker = rng.choice(nodes)
        key = rng.randrange(asker.space.size)
        result = await asker.lookup(key)
        assert result.owner == ideal.owner(key)
        if result.owner != asker.me:
            remote += 1
            one_hop += result.hops == 1
            assert result.hops == 1 or result.timeouts, (asker.me, key, result)
    assert one_hop >= 0.9 * remote


async def test_tables_fill_and_lookups_take_one_round_trip() -> None:
    async with memory_ring(12, "hint") as (_, nodes):
        await wait_until(lambda: tables_hold(nodes, nodes), 10, "every table to hold the ring")
        await lookups_check(nodes, random.Random(1))


async def test_a_joiner_learns_the_table_and_the_ring_learns_the_joiner() -> None:
    async with memory_ring(8, "hjoin") as (network, nodes):
        await wait_until(lambda: tables_hold(nodes, nodes), 10, "every table to hold the ring")
        joiner = await start_memory_node(network, "hjoin-new:1", nodes[3])
        everyone = [*nodes, joiner]
        try:
            await wait_until(lambda: tables_hold(everyone, everyone), 10, "the joiner known")
            await lookups_check(everyone, random.Random(2))
        finally:
            await joiner.stop_maintenance()


async def test_a_crash_and_a_leave_reach_every_table() -> None:
    async with memory_ring(10, "hgone") as (network, nodes):
        await wait_until(lambda: tables_hold(nodes, nodes), 10, "every table to hold the ring")
        crashed, leaving = nodes[2], nodes[6]
        await crashed.stop_maintenance()
        network.kill(crashed.me.address)
        await leaving.leave()
        network.kill(leaving.me.address)
        rest = [n for n in nodes if n not in (crashed, leaving)]
        await wait_until(lambda: tables_hold(rest, rest), 10, "the departures known")
        for node in rest:
            assert node.hints is not None
            members = node.hints.table.members
            assert members[crashed.me.id].state is MemberState.FAILED
            assert members[leaving.me.id].state is MemberState.LEFT
        await lookups_check(rest, random.Random(3))


async def test_nodes_without_hints_share_the_ring_with_nodes_that_have_them() -> None:
    """A node with hints off (or one too old for them) sends no gossip: the others never
    hear of it, and their lookups of its keys go the long way to the right owner."""
    network = MemoryNetwork()
    nodes: list[ChordNode] = []
    try:
        for i in range(8):
            cap = 0 if i % 2 else 1000
            join = nodes[0] if nodes else None
            nodes.append(await start_memory_node(network, f"hmix-{i}:1", join, hint_cap=cap))
        await wait_until(lambda: converged(nodes), 20, "the mixed ring to converge")
        with_hints = [n for n in nodes if n.hints is not None]
        assert len(with_hints) == 4 and all(n.transport.gossip is None for n in nodes[1::2])
        await wait_until(lambda: tables_hold(with_hints, with_hints), 10, "the tables to fill")
        ideal = IdealRouting.of([n.me for n in nodes], nodes[0].space)
        rng = random.Random(4)
        for _ in range(80):
            asker = rng.choice(nodes)
            key = rng.randrange(asker.space.size)
            assert (await asker.lookup(key)).owner == ideal.owner(key)
    finally:
        for node in nodes:
            await node.stop_maintenance()
