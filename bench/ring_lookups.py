"""Sampling a ring of node processes (ring_procs.Ring) for the latency benchmark: the bare
round trip, lookups of random keys through random nodes' `Lookup` RPC judged against the
ideal owner, and lookups right after a fault while maintenance repairs the ring."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from lookup_stats import Sample, ms, percentile
from ring_procs import CONVERGE_DEADLINE, LOOKUP_DEADLINE, Ring

from chordshare.chord.invariants import IdealRouting
from chordshare.transport.base import PeerError
from chordshare.v1 import chord_pb2 as pb

MAX_LOOKUPS_PER_PHASE = 5000


async def measure_rtt(ring: Ring, rounds: int = 20, same_node: int = 300) -> dict[str, Any]:
    """Round trips of Ping from this process (after a warm-up): to every live node in turn,
    as lookups meet them, and again and again to one node, the best case."""
    assert ring.transport is not None
    stubs = [ring.transport.stub(ref.address) for ref in ring.live()]

    async def ping(stub: Any) -> float:
        started = time.perf_counter()
        await stub.Ping(pb.PingRequest(), timeout=2.0)
        return time.perf_counter() - started

    for stub in stubs:
        await ping(stub)
    spread = [await ping(stub) for _ in range(rounds) for stub in stubs]
    one = [await ping(stubs[0]) for _ in range(same_node)]
    # A node's own round trip to a peer, seen from outside: a lookup of the asked node's
    # own id takes no hop (just our Lookup RPC); of its successor's id, one hop (the node
    # pings its successor). The difference is one node-to-node call.
    live = ring.live()
    ideal = IdealRouting.of(live, ring.space)
    zero: list[float] = []
    one_hop: list[float] = []
    for _ in range(5):
        for ref in live:
            client = ring.clients[ref.address]
            cases = ((ref.id, 0, zero), (ideal.successors(ref, 1)[0].id, 1, one_hop))
            for key, expected_hops, into in cases:
                started = time.perf_counter()
                hops = (await client.lookup(key)).hops
                if hops == expected_hops:
                    into.append(time.perf_counter() - started)
    node_rtt = statistics.median(one_hop) - statistics.median(zero)
    return {
        "samples": len(spread),
        "median_ms": ms(statistics.median(spread)),
        "p99_ms": ms(percentile(spread, 0.99)),
        "same_node_samples": len(one),
        "same_node_median_ms": ms(statistics.median(one)),
        "same_node_p99_ms": ms(percentile(one, 0.99)),
        "lookup_0_hops_median_ms": ms(statistics.median(zero)),
        "lookup_1_hop_median_ms": ms(statistics.median(one_hop)),
        "node_to_node_median_ms": ms(node_rtt),
    }


async def ping_chain(ring: Ring, rng: random.Random, calls: int) -> float:
    assert ring.transport is not None
    live = ring.live()
    started = time.monotonic()
    for _ in range(calls):
        await ring.transport.stub(rng.choice(live).address).Ping(pb.PingRequest(), timeout=2.0)
    return time.monotonic() - started


async def run_lookups(
    ring: Ring,
    rng: random.Random,
    *,
    count: int,
    window: float | None = None,
    chains: bool = False,
    since: float | None = None,
) -> list[Sample]:
    """Sequential lookups of random keys at random live nodes: `count` of them, or as many
    as fit in `window` seconds (never more than MAX_LOOKUPS_PER_PHASE). `chains`: follow
    each answered lookup by its reference chain of bare round trips. `since`: the moment
    (time.monotonic) the phase began, from which samples' `at` and the window count."""
    live = ring.live()
    ideal = IdealRouting.of(live, ring.space)
    size = ring.space.size
    began = time.monotonic() if since is None else since
    samples: list[Sample] = []
    while len(samples) < min(count, MAX_LOOKUPS_PER_PHASE):
        if window is not None and time.monotonic() - began > window:
            break
        asker = rng.choice(live)
        key = rng.randrange(ring.space.size)
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                ring.clients[asker.address].lookup(key), LOOKUP_DEADLINE
            )
            owner, hops, timeouts = answer.owner, answer.hops, answer.timeouts
        except (PeerError, TimeoutError):
            samples.append(Sample(started - began, time.monotonic() - started, False, False))
            continue
        latency = time.monotonic() - started
        true_owner = ideal.owner(key)
        skipped = owner != true_owner and owner == ideal.owner((true_owner.id + 1) % size)
        stopped = owner != true_owner and owner.address in ring.stopped()
        samples.append(
            Sample(
                started - began,
                latency,
                True,
                owner == true_owner,
                hops,
                timeouts,
                skipped,
                stopped,
                answer.seconds,
                await ping_chain(ring, rng, hops + 1) if chains else None,
            )
        )
    return samples


async def after_fault(
    ring: Ring, rng: random.Random, window: float, since: float
) -> tuple[list[Sample], dict[str, float | None]]:
    """Lookups for `window` seconds from `since` (when the fault began), while a slow poll
    (GetInfo of every node every half second) times how long maintenance takes to restore
    the ideal successor lists and predecessors ("ring"), and then the fingers too ("all")."""
    converged: dict[str, float | None] = {"ring": None, "all": None}

    async def watch() -> None:
        while time.monotonic() - since < CONVERGE_DEADLINE:
            if converged["ring"] is None and await ring.converged(fingers=False):
                converged["ring"] = round(time.monotonic() - since, 2)
            if converged["ring"] is not None and await ring.converged():
                converged["all"] = round(time.monotonic() - since, 2)
                return
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        samples = await run_lookups(
            ring, rng, count=MAX_LOOKUPS_PER_PHASE, window=window, since=since
        )
        await watcher
    finally:
        watcher.cancel()
    return samples, converged
