"""Ring merge on the in-memory transport: a partition splits a ring in two, each side
heals into a ring of its own, and once the partition heals the two become one again."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest
from memring import SPACE, start_memory_node
from waiting import wait_until

from chordshare.chord.invariants import convergence_problems
from chordshare.node.runtime import ChordNode
from chordshare.transport.memory import MemoryNetwork

NODES = 12


def problems(nodes: list[ChordNode], check_fingers: bool = False) -> list[str]:
    states = {n.me.address: n.state for n in nodes}
    return convergence_problems(states, set(states), check_fingers=check_fingers)


def converged(nodes: list[ChordNode], check_fingers: bool = False) -> bool:
    return not problems(nodes, check_fingers)


@pytest.fixture
async def ring() -> AsyncIterator[tuple[MemoryNetwork, list[ChordNode]]]:
    network = MemoryNetwork()
    nodes: list[ChordNode] = []
    for i in range(NODES):
        address = f"mem-{i}:1"
        nodes.append(await start_memory_node(network, address, nodes[0] if nodes else None))
    await wait_until(lambda: converged(nodes, True), 20, "the in-memory ring to converge")
    yield network, nodes
    for node in nodes:
        await node.stop_maintenance()


async def test_a_split_ring_merges_back_into_one(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    network, nodes = ring
    # Two sides whose ids interleave round the ring, the bootstrap node on one of them: the
    # other side's only ways back are the peers it dropped while cut off.
    shuffled = random.Random(7).sample(nodes, len(nodes))
    left, right = shuffled[: NODES // 2], shuffled[NODES // 2 :]
    network.partition([n.me.address for n in left], [n.me.address for n in right])
    await wait_until(
        lambda: converged(left) and converged(right), 30, "each side to form a ring of its own"
    )
    assert all(len(n.passive) > 0 for n in nodes), "every node remembers peers it dropped"

    network.heal()
    healed = time.monotonic()
    await wait_until(lambda: converged(nodes, True), 30, "one ring again after the partition")
    took = time.monotonic() - healed
    print(f"merged {len(left)} + {len(right)} nodes in {took:.2f} s")
    # Back through the peers they remembered: a merge probe, or a successor's probe of the
    # predecessor it lost at the cut, whichever answered first.
    assert sum(n.stats.merges + n.stats.hand_backs for n in nodes) >= 1
    # A call sent across the cut just before the heal fails at its deadline after it: that
    # suspicion lasts until the next probe of suspects answers.
    await wait_until(
        lambda: not any(n.transport.health.suspected() for n in nodes), 5, "no suspicions left"
    )
    for node in nodes:  # every lookup answers for the whole ring again
        for key in range(0, SPACE.size, 4099):
            result = await node.lookup(key)
            want = min((n.me for n in nodes), key=lambda n: (n.id - key) % SPACE.size)
            assert result.owner == want, (
                f"{node.me} key {key}: {result} suspects {node.transport.health.suspected()}"
            )


async def test_rings_that_never_shared_a_partition_merge_through_a_remembered_peer() -> None:
    """Two rings started apart, where one node of each once knew a node of the other (its
    passive list holds it): they merge."""
    network = MemoryNetwork()
    rings: list[list[ChordNode]] = [[], []]
    for i in range(8):
        address = f"apart-{i}:1"
        side = rings[i % 2]
        side.append(await start_memory_node(network, address, side[0] if side else None))
    everyone = rings[0] + rings[1]
    try:
        await wait_until(lambda: converged(rings[0]) and converged(rings[1]), 20, "two rings")
        assert not converged(everyone)
        a, b = rings[0][1], rings[1][2]
        a.passive.add(b.me, time.monotonic())
        await wait_until(lambda: converged(everyone, True), 30, "the two rings to merge")
    finally:
        for node in everyone:
            await node.stop_maintenance()
