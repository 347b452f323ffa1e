"""The fair token bucket, driven with plain clocks: a transfer moves at its cap, flows that
wait share it equally, bursts stay bounded, 0 is no limit."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.files.rates import SLACK, FairBucket, default_burst

EPS = 1e-6  # seconds of float rounding allowed in a finishing time

rates = st.floats(min_value=1_000, max_value=1e9)
sizes = st.integers(min_value=1, max_value=4 << 20)


def run_backlogged(
    bucket: FairBucket, flows: dict[Hashable, list[int]], depths: dict[Hashable, int] | None = None
) -> list[tuple[float, Hashable, int]]:
    """Every flow keeps its depth of asks (1 unless told) waiting while it has sizes left;
    the clock jumps from one due grant to the next. The grants, as (time, flow, size)."""
    depth = depths or dict.fromkeys(flows, 1)
    left = {flow: deque(asked) for flow, asked in flows.items()}
    out = dict.fromkeys(flows, 0)
    now = 0.0
    log: list[tuple[float, Hashable, int]] = []

    def top_up(flow: Hashable) -> None:
        while out[flow] < depth[flow] and left[flow]:
            bucket.ask(flow, left[flow].popleft(), now)
            out[flow] += 1

    for flow in flows:
        top_up(flow)
    while True:
        while granted := bucket.grants(now):
            for ask in granted:
                log.append((now, ask.flow, ask.size))
                out[ask.flow] -= 1
                top_up(ask.flow)
        due = bucket.next_grant_at(now)
        if due is None:
            return log
        assert due >= now
        now = due


@settings(max_examples=200, deadline=None)
@given(rate=rates, asked=st.lists(sizes, min_size=1, max_size=40), flows=st.integers(1, 4))
def test_a_transfer_moves_at_its_cap(rate: float, asked: list[int], flows: int) -> None:
    """Backlogged asks finish when the bucket's credit has paid for all but its first
    burst: the long-run rate is the cap, never more, never less."""
    bucket = FairBucket(rate)
    log = run_backlogged(bucket, {f: asked for f in range(flows)})
    total = flows * sum(asked)
    assert sum(size for _, _, size in log) == total == bucket.granted_bytes
    finished = log[-1][0]
    paid = max(0.0, total - bucket.burst)
    assert (paid - SLACK) / rate - EPS <= finished <= paid / rate + EPS


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    shares=st.lists(st.tuples(st.integers(1, 1 << 20), st.integers(1, 4)), min_size=2, max_size=5),
    data=st.data(),
)
def test_flows_that_wait_share_the_cap_equally(
    rate: float, shares: list[tuple[int, int]], data: st.DataObject
) -> None:
    """However large and however many at once each flow's asks are, while every flow
    waits on the cap (no idle credit: each grant waits for its bytes), no flow is ahead
    of another by more than the two's largest asks."""
    flows: dict[Hashable, list[int]] = {}
    for flow, (largest, _) in enumerate(shares):
        flows[flow] = data.draw(st.lists(st.integers(1, largest), min_size=30, max_size=30))
    depths: dict[Hashable, int] = {flow: depth for flow, (_, depth) in enumerate(shares)}
    bucket = FairBucket(rate, burst=0)
    log = run_backlogged(bucket, flows, depths)
    served = dict.fromkeys(flows, 0)
    asks_left = {flow: len(asked) for flow, asked in flows.items()}
    for _, flow, size in log:
        served[flow] += size
        asks_left[flow] -= 1
        if any(asks_left[f] < depths[f] for f in flows):
            break  # a flow is running out: it no longer waits all the time
        for a in flows:
            for b in flows:
                assert served[a] - served[b] <= max(flows[a]) + max(flows[b])


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    events=st.lists(
        st.tuples(st.floats(0, 0.5), st.integers(0, 3), sizes, st.booleans()),
        min_size=1,
        max_size=60,
    ),
    lateness=st.lists(st.floats(0, 0.2), min_size=1, max_size=10),
)
def test_bursts_are_bounded(
    rate: float, events: list[tuple[float, int, int, bool]], lateness: list[float]
) -> None:
    """Asks at any times, some withdrawn before they go, grants looked for late: from the
    start no more than the burst and the rate's worth is granted, and over any stretch no
    more than that and the largest ask."""
    bucket = FairBucket(rate)
    now = 0.0
    pending = deque(events)
    late = deque(lateness)
    grants: list[tuple[float, int]] = []
    withdrawing = []
    while pending or bucket.waiting:
        due = bucket.next_grant_at(now)
        if due is not None:
            due += late[0]
            late.rotate()
        arrival = now + pending[0][0] if pending else None
        if due is not None and (arrival is None or due <= arrival):
            now = due
        else:
            assert arrival is not None
            now = arrival
            _, flow, size, withdrawn = pending.popleft()
            ask = bucket.ask(flow, size, now)
            if withdrawn:
                withdrawing.append(ask)
        grants += [(now, ask.size) for ask in bucket.grants(now)]
        for ask in withdrawing:
            bucket.withdraw(ask, now)  # a no-op once granted
        withdrawing.clear()
    largest = max(size for _, _, size, _ in events)
    for first in range(len(grants)):
        start = grants[first][0]
        assert sum(s for t, s in grants[: first + 1]) <= bucket.burst + rate * start + SLACK
        window = 0
        for t, size in grants[first:]:
            window += size
            assert window <= bucket.burst + largest + rate * (t - start) + SLACK


@given(asked=st.lists(sizes, max_size=20))
def test_rate_zero_is_no_limit(asked: list[int]) -> None:
    bucket = FairBucket(0)
    assert bucket.unlimited
    assert all(bucket.ask("flow", size, 0.0).granted for size in asked)
    assert bucket.grants(0.0) == [] and bucket.next_grant_at(0.0) is None
    assert bucket.granted_bytes == sum(asked)


def test_a_withdrawn_ask_never_goes_nor_holds_others_back() -> None:
    bucket = FairBucket(1_000_000, burst=0)
    big = bucket.ask("big", 5_000_000, 0.0)
    small = bucket.ask("small", 1_000, 0.0)
    assert bucket.grants(0.0) == []
    bucket.withdraw(big, 0.5)
    assert bucket.grants(0.5) == [small] and not big.granted
    assert bucket.next_grant_at(0.5) is None


def test_a_large_ask_waits_its_own_time() -> None:
    """An ask larger than the burst waits until the bucket holds all of it: a megabyte
    at a megabyte a second takes about a second, not nothing."""
    bucket = FairBucket(1_000_000)
    assert bucket.burst == default_burst(1_000_000) == 50_000
    bucket.ask("flow", 1_000_000, 0.0)
    assert bucket.grants(0.0) == []
    assert bucket.next_grant_at(0.0) == pytest.approx(0.95)


def test_negative_rates_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        FairBucket(-1)
    with pytest.raises(ValueError):
        FairBucket(1000).ask("flow", -1, 0.0)


def test_idle_credit_is_one_burst_however_long_the_idle() -> None:
    bucket = FairBucket(1_000_000)  # a burst of 50,000 bytes
    for _ in range(100):
        bucket.ask("flow", 1_000, 3600.0)
    assert len(bucket.grants(3600.0)) == 50


def test_a_late_look_gives_one_burst_beyond_the_waiting_ask() -> None:
    bucket = FairBucket(1_000_000, now=0.0)
    bucket.ask("big", 1_000_000, 0.0)
    for _ in range(100):
        bucket.ask("small", 1_000, 0.0)
    granted = bucket.grants(60.0)  # looked at a minute late
    assert sum(ask.size for ask in granted) == 1_000_000 + 50_000
