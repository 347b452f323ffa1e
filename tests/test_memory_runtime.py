"""Node runtimes on the in-memory transport: a hung peer costs a lookup little time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from memring import SPACE, converged, memory_ring
from waiting import wait_until

from chordshare.chord.invariants import IdealRouting
from chordshare.node.runtime import ChordNode
from chordshare.transport.memory import MemoryNetwork


@pytest.fixture
async def ring() -> AsyncIterator[tuple[MemoryNetwork, list[ChordNode]]]:
    async with memory_ring(12, "mem") as made:
        yield made


async def test_frozen_peer_is_routed_around_and_suspected_node_wide(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    network, nodes = ring
    frozen = nodes[5]
    network.freeze(frozen.me.address)
    others = [n for n in nodes if n is not frozen]
    ideal = IdealRouting.of([n.me for n in others], SPACE)
    asker = min(others, key=lambda n: SPACE.distance(n.me.id, frozen.me.id) or SPACE.size)
    # A node that stopped is vouched for while its last words are recent (the alive window);
    # once they are not, a key it owned belongs to its successor.
    await wait_until(
        lambda: all(frozen.me.address not in n.timing.heard(n.transport.health) for n in others),
        5,
        "the frozen node's last words to age out",
    )
    key = frozen.me.id
    started = time.monotonic()
    first = await asker.lookup(key)
    first_took = time.monotonic() - started
    assert first.owner == ideal.owner(key)
    # One deadline at most: the deadline adapts to the fast in-memory round trips (floor).
    assert first_took < 1.0
    started = time.monotonic()
    for k in range(0, SPACE.size, 997):
        result = await asker.lookup(k)
        assert result.owner == ideal.owner(k)
        assert result.timeouts == 0  # suspected once, avoided by every later lookup
    assert time.monotonic() - started < 1.0


async def test_crashed_peer_heals_out_of_the_ring(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    network, nodes = ring
    dead = nodes[3]
    network.kill(dead.me.address)
    await dead.stop_maintenance()
    live = [n for n in nodes if n is not dead]

    await wait_until(lambda: converged(live), 20, "the ring to heal around a crashed node")


async def test_a_resumed_peer_is_trusted_again_within_a_probe_period(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    network, nodes = ring
    frozen = nodes[7]
    network.freeze(frozen.me.address)
    others = [n for n in nodes if n is not frozen]
    for node in others:  # every node runs into the frozen one and suspects it
        await node.lookup(frozen.me.id)
    assert any(frozen.me.address in n.transport.health for n in others)
    network.thaw(frozen.me.address)

    def trusted_everywhere() -> bool:
        return not any(frozen.me.address in n.transport.health for n in others)

    # Well before the 10 s suspicion would age out: the check-predecessor loop probes.
    await wait_until(trusted_everywhere, 3.0, "every node to find the resumed peer alive")

    # Stabilize dropped it while it hung; its notify brings it back.
    await wait_until(
        lambda: converged(nodes, check_fingers=False), 20.0, "the resumed peer to be linked in"
    )
    for node in others:
        assert (await node.lookup(frozen.me.id)).owner == frozen.me
