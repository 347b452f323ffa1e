"""Adaptive deadlines and node-wide suspicion of peers."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import wait_until

from chordshare.chord.messages import Call, ConfirmOwner, FindStep, NodeRef, Ping, Pong, Reply
from chordshare.node.probes import DOWN_AFTER, SuspectProbes
from chordshare.node.retransmit import RETRANSMITS, Retransmitting
from chordshare.node.tasks import NodeTasks
from chordshare.transport.address import is_loopback, is_wildcard, normalize_address, parse_address
from chordshare.transport.base import Hello, PeerError
from chordshare.transport.health import KNOWN_AFTER, LOSSY_MEMORY, STEP_FLOOR, PeerHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=50))
def test_deadline_stays_between_floor_and_ceiling(samples: list[float]) -> None:
    health = PeerHealth(floor=0.1, ceiling=2.0)
    for rtt in samples:
        health.record_success("a:1", rtt)
        assert 0.1 <= health.timeout_for("a:1") <= 2.0


def test_deadline_follows_round_trips() -> None:
    health = PeerHealth(floor=0.05, ceiling=2.0, initial=1.0)
    assert health.timeout_for("a:1") == 1.0  # nothing known yet
    for _ in range(30):
        health.record_success("a:1", 0.010)
    assert health.timeout_for("a:1") == pytest.approx(0.05)  # steady 10 ms: the floor
    for _ in range(30):
        health.record_success("b:1", 0.300)
    assert 0.3 <= health.timeout_for("b:1") < 0.5
    # A peer never heard from gets the node-wide estimate, not the cold 1 s.
    assert health.timeout_for("c:1") < 1.0


def test_suspicion_is_shared_and_ages_out() -> None:
    clock = FakeClock()
    health = PeerHealth(suspicion_ttl=10.0, clock=clock)
    health.record_failure("a:1")
    assert "a:1" in health and "b:1" not in health
    assert health.suspected() == ["a:1"]
    clock.now = 5.0
    assert "a:1" in health
    health.record_success("a:1", 0.01)  # it answered again
    assert "a:1" not in health
    health.record_failure("a:1")
    clock.now = 16.0
    assert "a:1" not in health  # retried after the suspicion aged out


def test_a_peer_that_went_quiet_at_once_is_heard_for_the_short_window_only() -> None:
    clock = FakeClock()
    health = PeerHealth(clock=clock)
    for _ in range(20):  # a healthy neighbour, then stopped: every call fails from here
        clock.now += 0.25
        health.record_success("a:1", 0.001)
    health.record_failure("a:1")
    clock.now += 0.9
    assert "a:1" in health.heard_within(1.0, 4.0)
    clock.now += 0.2
    assert "a:1" not in health.heard_within(1.0, 4.0)


@pytest.mark.parametrize("short", [False, True])
def test_a_peer_that_answers_after_a_missed_deadline_is_heard_for_the_long_window(
    short: bool,
) -> None:
    """A lost answer (TCP resends it after a silence) marks a lossy link; a missed lookup
    step's few round trips (a busy host misses those) does not."""
    clock = FakeClock()
    health = PeerHealth(clock=clock)
    health.record_success("a:1", 0.001)
    # A lookup step waits a few round trips, less than the peer's whole deadline.
    health.record_failure("a:1", STEP_FLOOR if short else None)
    clock.now += 0.3
    health.record_answer("a:1")
    clock.now += 3.0  # the next silence, longer than the short window
    assert ("a:1" in health.heard_within(1.0, 4.0)) is not short
    assert "a:1" not in health.heard_within(1.0, 2.0)
    # The link is taken for lossy a while only: a silence long after is judged as any.
    clock.now += LOSSY_MEMORY
    health.record_success("a:1", 0.001)
    clock.now += 1.5
    assert "a:1" not in health.heard_within(1.0, 4.0)
    # Nor is an answer with no failure before it a sign.
    health.record_answer("b:1")
    clock.now += 1.5
    health.record_answer("b:1")
    clock.now += 1.5
    assert "b:1" not in health.heard_within(1.0, 4.0)


def test_a_timeout_doubles_the_deadline_up_to_the_ceiling() -> None:
    clock = FakeClock()
    health = PeerHealth(floor=0.1, ceiling=2.0, clock=clock)
    for _ in range(30):
        health.record_success("a:1", 0.001)
    assert health.timeout_for("a:1") == pytest.approx(0.1)
    seen = []
    for _ in range(7):  # RFC 6298 §5.5, one timeout after another
        clock.now += health.timeout_for("a:1")
        health.record_failure("a:1")
        seen.append(health.timeout_for("a:1"))
    assert seen == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    assert health.backoffs("a:1") == 7
    # Another peer is not affected.
    assert health.timeout_for("b:1") < 0.2


def test_calls_that_time_out_together_back_off_once() -> None:
    clock = FakeClock()
    health = PeerHealth(floor=0.1, clock=clock)
    health.record_success("a:1", 0.001)
    clock.now = 1.0
    for _ in range(4):  # four calls sent together, all expiring at once
        health.record_failure("a:1")
        clock.now += 0.001
    assert health.timeout_for("a:1") == pytest.approx(0.2)
    assert health.backoffs("a:1") == 1


def test_an_answer_after_backoffs_starts_the_estimate_afresh() -> None:
    """A peer whose round trip jumped from 1 ms to 200 ms: its old estimate is dropped once
    it answers after backing off (RFC 6298 §5.7), so the next calls wait long enough."""
    clock = FakeClock()
    health = PeerHealth(floor=0.1, ceiling=2.0, clock=clock)
    for _ in range(30):
        health.record_success("a:1", 0.001)
    for _ in range(2):
        clock.now += 1.0
        health.record_failure("a:1")
    assert "a:1" in health
    health.record_success("a:1", 0.2)
    assert "a:1" not in health and health.backoffs("a:1") == 0
    assert health.timeout_for("a:1") == pytest.approx(0.2 + 4 * 0.1)
    # One backoff only: the sample joins the estimate as usual, and the backoff goes.
    health.record_success("b:1", 0.001)
    clock.now += 1.0
    health.record_failure("b:1")
    health.record_success("b:1", 0.001)
    assert health.timeout_for("b:1") == pytest.approx(0.1)


class SlowTransport:
    """Peers that answer after `delay[address]` seconds, or never (None); a call waits the
    deadline it is given, or the health's deadline for the call, as the gRPC transport
    does."""

    def __init__(self, health: PeerHealth, delay: dict[str, float | None]) -> None:
        self.health = health
        self.delay = delay
        self.calls: list[tuple[str, float]] = []

    async def call(self, call: Call, deadline: float | None = None) -> Reply:
        address = call.peer.address
        if deadline is None:
            deadline = self.health.deadline(call)
        self.calls.append((address, deadline))
        delay = self.delay.get(address)
        if delay is not None and delay < 0:
            self.health.record_failure(address)
            raise PeerError(address, "connection refused")
        if delay is None or delay > deadline:
            await asyncio.sleep(deadline)
            self.health.record_failure(address)
            raise PeerError(address, "did not answer in time")
        await asyncio.sleep(delay)
        self.health.record_success(address, delay)
        return Pong(call.peer)

    async def hello(self, address: str, deadline: float) -> Hello:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def fast_health() -> PeerHealth:
    health = PeerHealth(floor=0.01, ceiling=0.2, initial=0.01)
    for address in ("slow:1", "gone:1", "dead:1"):
        health.record_success(address, 0.001)
    return health


async def test_a_peer_that_became_slow_is_heard_by_retransmitting() -> None:
    health = fast_health()
    transport = SlowTransport(health, {"slow:1": 0.03})  # 30x its old round trip
    calls = Retransmitting(transport)
    reply = await calls.call(Ping(NodeRef(1, "slow:1")))
    assert reply == Pong(NodeRef(1, "slow:1"))
    deadlines = [d for _, d in transport.calls]
    assert deadlines == pytest.approx([0.01, 0.02, 0.04])  # backed off twice, then heard
    assert "slow:1" not in health
    assert health.timeout_for("slow:1") > 0.03  # and it is waited for from now on
    await calls.call(Ping(NodeRef(1, "slow:1")))
    assert len(transport.calls) == 4


async def test_retransmissions_give_up_and_spare_refusals_and_suspects() -> None:
    health = fast_health()
    gave_up: list[str] = []
    transport = SlowTransport(health, {"gone:1": None, "dead:1": -1})
    calls = Retransmitting(transport, gave_up.append)
    with pytest.raises(PeerError):
        await calls.call(Ping(NodeRef(1, "gone:1")))
    assert len(transport.calls) == 1 + RETRANSMITS and gave_up == ["gone:1"]
    with pytest.raises(PeerError):  # suspected now: one try, a lookup routes around it
        await calls.call(Ping(NodeRef(1, "gone:1")))
    assert len(transport.calls) == 2 + RETRANSMITS and gave_up == ["gone:1"] * 2
    transport.calls.clear()
    with pytest.raises(PeerError):  # a refusal is an answer: no retransmission
        await calls.call(Ping(NodeRef(2, "dead:1")))
    assert len(transport.calls) == 1 and gave_up == ["gone:1"] * 2


async def test_a_lookup_step_goes_on_after_one_deadline_while_the_verdict_follows() -> None:
    """A lookup with other hops to try hears of a slow step after one deadline, not after
    the retransmissions, which go on without it with the step's deadline and hand a peer
    they do not hear to the probes; a probe's whole deadline hears it. One without (a
    join's first step) waits for them."""
    health = fast_health()
    transport = SlowTransport(health, {"slow:1": 0.03, "gone:1": None})
    gave_up: list[str] = []
    calls = Retransmitting(transport, gave_up.append)
    started = time.monotonic()
    with pytest.raises(PeerError, match="did not answer a lookup step"):
        await calls.call(FindStep(NodeRef(1, "slow:1"), 5, fallback=True))
    assert time.monotonic() - started < 0.03  # one deadline (0.01 s), not 0.01 + 0.02 + 0.04
    assert "slow:1" in health  # suspected at once, so other lookups route around it
    await wait_until(lambda: gave_up == ["slow:1"], 2.0, "the retransmissions' verdict")
    # A step's few round trips (at least 20 ms), never the backed-off deadline: that one
    # doubles towards the ceiling, and every later call to a frozen peer would wait it out.
    assert [d for _, d in transport.calls] == pytest.approx([0.01, 0.02, 0.02])
    assert await calls.call(FindStep(NodeRef(1, "slow:1"), 5)) == Pong(NodeRef(1, "slow:1"))
    assert "slow:1" not in health  # the plain call waited the backed-off deadline

    lone = SlowTransport(fast_health(), {"slow:1": 0.03})
    assert await Retransmitting(lone).call(FindStep(NodeRef(1, "slow:1"), 5)) == Pong(
        NodeRef(1, "slow:1")
    )  # no other hop: heard after two retransmissions
    assert len(lone.calls) == 3

    with pytest.raises(PeerError):  # a hung peer: the lookup leaves its verdict behind...
        await calls.call(FindStep(NodeRef(2, "gone:1"), 5, fallback=True))
    await calls.close()  # ...and closing the node stops it
    assert not calls._verdicts


@pytest.mark.parametrize(
    ("text", "normal"),
    [("127.0.0.1:7000", "127.0.0.1:7000"), ("[::1]:80", "[::1]:80"), (" node-3:9 ", "node-3:9")],
)
def test_addresses_normalize(text: str, normal: str) -> None:
    assert normalize_address(text) == normal


@pytest.mark.parametrize(
    "text", ["", "7000", "host", "host:", ":7000", "host:0", "host:70000", "::1:80", "a b:1"]
)
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="malformed address"):
        parse_address(text)


def test_wildcard_and_loopback() -> None:
    assert is_wildcard("0.0.0.0:0") and is_wildcard("[::]:7000")
    assert not is_wildcard("10.0.0.1:7000")
    assert is_loopback("127.0.0.5:1") and is_loopback("localhost:1") and is_loopback("[::1]:1")
    assert not is_loopback("node-1:7000")


class SilentTransport(SlowTransport):
    """Nobody answers a probe."""

    async def hello(self, address: str, deadline: float) -> Hello:
        self.health.record_failure(address)
        raise PeerError(address, "did not answer in time")


async def test_a_peer_is_declared_down_only_after_its_probes_failed_for_a_while() -> None:
    """A frozen host or a lossy link fails a probe now and then: only a silence that lasts
    DOWN_AFTER takes a peer out of the membership hints."""
    now = [0.0]
    down: list[str] = []
    tasks = NodeTasks()
    await tasks.open()
    probes = SuspectProbes(SilentTransport(fast_health(), {}), tasks, down.append, lambda: now[0])
    probes.running = True

    async def probe_at(moment: float) -> None:
        now[0] = moment
        probes.start("gone:1")
        await wait_until(lambda: not probes._probes, 2.0, "the probe to end")

    try:
        for moment in (0.0, 10.0, 20.0, DOWN_AFTER - 0.1):
            await probe_at(moment)
        assert down == []
        await probe_at(DOWN_AFTER)
        assert down == ["gone:1"]
        # Silent again long after: that silence is counted from its own start.
        await probe_at(3 * DOWN_AFTER)
        await probe_at(3 * DOWN_AFTER + 1)
        assert down == ["gone:1"]
    finally:
        probes.stop()
        await tasks.close()


def test_a_step_with_a_way_on_waits_the_peers_round_trips_not_the_floor() -> None:
    health = PeerHealth(floor=0.1, ceiling=2.0, initial=1.0)
    for _ in range(8):
        health.record_success("quick:1", 0.001)
    peer, fresh = NodeRef(1, "quick:1"), NodeRef(2, "new:1")
    full = health.timeout_for("quick:1")
    assert full == 0.1  # the floor
    assert health.deadline(FindStep(peer, 5)) == full
    assert health.deadline(FindStep(peer, 5, fallback=True)) == STEP_FLOOR
    assert health.deadline(ConfirmOwner(peer, 5, fallback=True)) == STEP_FLOOR
    # Told of nodes the asker could not reach, it checks them first: that is waited for.
    checking = ConfirmOwner(peer, 5, (fresh,), fallback=True)
    assert health.deadline(checking) == health.timeout_for_check("quick:1") > full
    # A peer we never measured gets the full deadline while the node knows few round trips.
    assert health.deadline(FindStep(fresh, 5, fallback=True)) == health.timeout_for("new:1")
    # A slow peer's own round trips say how long to wait.
    for _ in range(8):
        health.record_success("slow:1", 0.05)
    slow = health.deadline(FindStep(NodeRef(3, "slow:1"), 5, fallback=True))
    assert 0.05 < slow <= health.timeout_for("slow:1")


def test_a_step_to_a_peer_never_measured_waits_the_nodes_round_trips_once_it_knows_them() -> None:
    """A frozen peer the asker never called costs a step the node's few round trips, not
    the floor of a whole deadline; a node that is still joining (a sample or two, from a
    ring that may all be starting) waits the whole deadline."""
    health = PeerHealth(floor=0.1, ceiling=2.0, initial=1.0)
    fresh = FindStep(NodeRef(2, "new:1"), 5, fallback=True)
    for i in range(KNOWN_AFTER):
        assert health.deadline(fresh) == health.timeout_for("new:1") >= 0.1
        health.record_success(f"peer{i}:1", 0.03)
    assert health.deadline(fresh) == pytest.approx(0.03, abs=0.002)
    # Only for a call with a way on.
    assert health.deadline(FindStep(NodeRef(2, "new:1"), 5)) == health.timeout_for("new:1")
