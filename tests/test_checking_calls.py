"""What a node waits for when a peer checks other nodes before it answers: a stopped peer
is told from a checking one within a lookup step's deadline, and a node's own checks of
several silent nodes go out together, so they cost one check's time, not the sum."""

from __future__ import annotations

import asyncio
from collections.abc import Generator

import pytest

from chordshare.chord.messages import (
    Call,
    Claim,
    ConfirmOwner,
    NodeRef,
    OwnerAnswer,
    Ping,
    Pong,
    Reply,
)
from chordshare.node.driver import CheckingPings
from chordshare.node.retransmit import Retransmitting
from chordshare.transport.base import Hello, PeerError
from chordshare.transport.health import PeerHealth

GONE = NodeRef(0, "gone:1")


class Peers:
    """Peers on a fake network. A confirmation that names nodes to check is answered after
    `checking[address]` seconds, one that names none at once; None: never (a stopped
    process). A check (hello) is answered after `hello[address]` seconds, None: never."""

    def __init__(
        self,
        health: PeerHealth,
        checking: dict[str, float | None],
        hello: dict[str, float | None],
        lossy: frozenset[str] = frozenset(),
    ) -> None:
        self.health, self.checking, self.hello_delay = health, checking, hello
        self.lossy = lossy  # peers whose answers to the question without checks are lost
        self.hellos_under_way = 0
        self.most_hellos_at_once = 0
        self.hello_deadlines: list[float] = []

    async def _wait(self, address: str, delay: float | None, deadline: float) -> None:
        if delay is None or delay > deadline:
            await asyncio.sleep(deadline)
            self.health.record_failure(address, deadline)
            raise PeerError(address, "did not answer in time")
        await asyncio.sleep(delay)
        self.health.record_answer(address)

    async def call(self, call: Call, deadline: float | None = None) -> Reply:
        wait = self.health.deadline(call) if deadline is None else deadline
        if isinstance(call, Ping):
            return Pong((await self.hello(call.peer.address, wait)).node)
        assert isinstance(call, ConfirmOwner)
        address = call.peer.address
        delay = self.checking[address]
        if not call.unreachable and delay is not None:
            delay = None if address in self.lossy else 0.0  # nothing to check: at once
        await self._wait(address, delay, wait)
        return OwnerAnswer(call.peer, Claim.NOT_OWNER, call.unreachable or (GONE,), vouched=True)

    async def hello(self, address: str, deadline: float) -> Hello:
        self.hellos_under_way += 1
        self.hello_deadlines.append(deadline)
        self.most_hellos_at_once = max(self.most_hellos_at_once, self.hellos_under_way)
        try:
            await self._wait(address, self.hello_delay[address], deadline)
        finally:
            self.hellos_under_way -= 1
        return Hello(NodeRef(int(address.split(":")[0][1:]), address), 160, True)

    async def close(self) -> None:
        return None


def health_of(*addresses: str) -> PeerHealth:
    health = PeerHealth(floor=0.05, ceiling=1.0, initial=0.05)
    for address in addresses:
        health.record_success(address, 0.001)
    return health


async def test_a_stopped_peer_asked_to_check_others_costs_a_step_not_its_checks() -> None:
    """Asked to check a node we could not reach, a running peer may take its checks' time
    (here 0.1 s of the 0.3 s it is given); a stopped one is left after a lookup step's
    deadline (0.02 s), since it does not answer the same question without the checks."""
    health = health_of("n1:1", "n2:1")
    calls = Retransmitting(Peers(health, {"n1:1": None, "n2:1": 0.1}, {}))
    stopped = ConfirmOwner(NodeRef(1, "n1:1"), 5, (GONE,), fallback=True)
    assert health.deadline(stopped) == pytest.approx(0.3)
    with pytest.raises(PeerError, match=r"did not answer a lookup step in 0\.020 s"):
        await calls.call(stopped)
    checking = ConfirmOwner(NodeRef(2, "n2:1"), 5, (GONE,), fallback=True)
    reply = await calls.call(checking)
    assert reply == OwnerAnswer(checking.peer, Claim.NOT_OWNER, (GONE,), vouched=True)
    await calls.close()


async def test_an_answer_that_comes_before_the_probe_is_taken() -> None:
    """On a lossy link the question without checks may be lost while the one with them is
    answered: that answer counts, the probe's silence does not."""
    health = health_of("n1:1")
    calls = Retransmitting(Peers(health, {"n1:1": 0.005}, {}, lossy=frozenset({"n1:1"})))
    ask = ConfirmOwner(NodeRef(1, "n1:1"), 5, (GONE,), fallback=True)
    assert await calls.call(ask) == OwnerAnswer(ask.peer, Claim.NOT_OWNER, (GONE,), vouched=True)
    await calls.close()


def checks_of(
    nodes: list[NodeRef], needed: int | None = None
) -> Generator[Call, Reply, list[Reply]]:
    """An answer's checks, one after another, as `ownership.confirm` makes them; it stops
    once it has `needed` replies (None: all)."""
    replies: list[Reply] = []
    for node in nodes[:needed]:
        replies.append((yield Ping(node)))
    return replies


async def test_checks_of_several_silent_nodes_go_out_together() -> None:
    nodes = [NodeRef(i, f"n{i}:1") for i in (3, 4, 5)]
    peers = Peers(health_of(), {}, {"n3:1": None, "n4:1": None, "n5:1": 0.01})
    checking = CheckingPings(peers, peers)
    replies = await checking.answer(checks_of(nodes), nodes)
    assert peers.most_hellos_at_once == 3
    assert [type(r).__name__ for r in replies] == ["Unreachable", "Unreachable", "Pong"]
    assert [getattr(r, "node", getattr(r, "peer", None)) for r in replies] == nodes

    # An answer that stops early leaves no check of its own behind.
    peers.most_hellos_at_once = 0
    first_alive = [nodes[2], *nodes[:2]]
    early = await checking.answer(checks_of(first_alive, needed=1), first_alive)
    assert [type(r).__name__ for r in early] == ["Pong"]
    await asyncio.sleep(0)
    assert peers.hellos_under_way == 0


@pytest.mark.parametrize("suspected", [True, False])
async def test_a_nodes_check_of_a_peer_it_could_not_reach_waits_its_round_trips(
    suspected: bool,
) -> None:
    """A lookup whose candidate is this node checks the node it could not reach as any
    candidate does: once, within the node's round trips (twice them while it is suspected),
    not the deadline its missed calls backed off to (the ceiling, for a frozen one)."""
    now = [0.0]
    health = PeerHealth(floor=0.05, ceiling=1.0, initial=0.05, clock=lambda: now[0])
    health.record_success("n1:1", 0.001)
    for _ in range(5):
        now[0] += 1.0
        health.record_failure("n1:1")
    if not suspected:
        now[0] += health.suspicion_ttl + 1  # the suspicion aged out, the backoff did not
    assert health.timeout_for("n1:1") == 1.0
    peers = Peers(health, {}, {"n1:1": None})
    calls = Retransmitting(peers)
    with pytest.raises(PeerError):
        await calls.call(Ping(NodeRef(1, "n1:1"), check=True))
    assert peers.hello_deadlines == [0.1 if suspected else 0.05]
    await calls.close()
