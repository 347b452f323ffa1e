"""Pauses at run time, on the in-memory transport: a node that stood still claims no key
until it heard from its neighbours again, and its successor gives its keys back the moment
it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from memring import memory_ring
from waiting import wait_until

from chordshare.chord.messages import Claim, ConfirmOwner, OwnerAnswer
from chordshare.node.runtime import ChordNode, Timing
from chordshare.transport.memory import MemoryNetwork


@pytest.fixture
async def ring() -> AsyncIterator[tuple[MemoryNetwork, list[ChordNode]]]:
    async with memory_ring(8, "pause") as made:
        yield made


async def test_a_node_back_from_a_pause_claims_nothing_until_it_checked(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    _, nodes = ring
    node = nodes[3]
    key = node.me.id
    assert node.claim(key) is Claim.OWNER
    # Maintenance far apart: only the check a pause starts can be what checks the view.
    await node.stop_maintenance()
    node.timing = Timing(stabilize=60, check_predecessor=60, fix_fingers=60)
    await node._start_maintenance()
    # As after SIGSTOP: the node's clock moved on while it ran nothing.
    assert node.pauses.freshness.last_tick is not None
    node.pauses.freshness.last_tick -= 3 * node.pauses.freshness.window
    answer = await node.handle(ConfirmOwner(node.me, key))
    assert isinstance(answer, OwnerAnswer) and answer.claim is Claim.UNSURE
    assert node.claim(key) is Claim.UNSURE
    pred = node.state.predecessor
    assert pred is not None and pred.address in node.transport.health  # suspect until heard
    # It checks at once, not at its next maintenance round.
    await wait_until(lambda: node.claim(key) is Claim.OWNER, 2.0, "the view to be checked")
    other = nodes[0] if nodes[0] is not node else nodes[1]
    assert (await other.lookup(key)).owner == node.me


async def test_a_lookup_waits_for_an_unsure_owner_and_names_it(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    _, nodes = ring
    node = nodes[5]
    assert node.pauses.freshness.last_tick is not None
    node.pauses.freshness.last_tick -= 3 * node.pauses.freshness.window
    other = nodes[1]
    result = await other.lookup(node.me.id)
    assert result.owner == node.me


async def test_the_successor_hands_a_resumed_node_its_keys_back_at_once(
    ring: tuple[MemoryNetwork, list[ChordNode]],
) -> None:
    network, nodes = ring
    frozen = nodes[6]
    successor = next(n for n in nodes if n.me == frozen.state.successor)
    network.freeze(frozen.me.address)
    await wait_until(
        lambda: frozen.me in successor.state.absorbed_nodes(),
        10,
        "the successor to take the frozen node's keys",
    )
    others = [n for n in nodes if n is not frozen]
    for node in others:  # while frozen, its successor answers for its keys
        assert (await node.lookup(frozen.me.id)).owner == successor.me
    await frozen.stop_maintenance()  # it sends nothing: only the successor's probe helps
    network.thaw(frozen.me.address)
    await wait_until(
        lambda: successor.state.predecessor == frozen.me,
        1.0,
        "the successor to hand the keys back",
    )
    for node in others:
        assert (await node.lookup(frozen.me.id)).owner == frozen.me


@pytest.mark.parametrize("seen_by", ["a request", "the check itself"])
async def test_a_node_back_from_a_pause_keeps_a_predecessor_back_from_it_too(
    ring: tuple[MemoryNetwork, list[ChordNode]], seen_by: str
) -> None:
    """Both stood still; the predecessor is slower to answer again. Its successor's first
    check of it fails, but so soon after its own pause that proves nothing: the successor
    keeps it and claims no key until it answers, rather than take its keys. The pause is
    seen first by a request, or by a check of the predecessor due when the node resumed."""
    network, nodes = ring
    node = nodes[2]
    pred = node.state.predecessor
    assert pred is not None
    key = node.me.id
    for other in nodes:  # nobody else asks it about its predecessor meanwhile
        if other.me != pred:
            await other.stop_maintenance()
    # No check of the predecessor but the one a pause starts.
    node.timing = Timing(stabilize=0.5, check_predecessor=60, fix_fingers=60)
    await node._start_maintenance()
    network.freeze(pred.address)
    health = node.transport.health
    await wait_until(
        lambda: pred.address not in node.timing.heard(health), 5.0, "a silence as long"
    )
    assert node.pauses.freshness.last_tick is not None
    node.pauses.freshness.last_tick -= 3 * node.pauses.freshness.window
    if seen_by == "the check itself":
        await node.check_predecessor()
        assert node.state.predecessor == pred and node.state.absorbed == []
    assert node.claim(key) is Claim.UNSURE  # sees the pause: checks its view
    recheck = node._recheck
    assert recheck is not None
    await asyncio.wait_for(recheck, 5.0)  # its predecessor failed that check
    assert node.state.predecessor == pred and node.state.absorbed == []
    assert node.claim(key) is Claim.UNSURE
    network.thaw(pred.address)  # it calls its successor, as every period
    await wait_until(lambda: node.claim(key) is Claim.OWNER, 2.0, "the view to be checked")
    assert node.state.predecessor == pred
