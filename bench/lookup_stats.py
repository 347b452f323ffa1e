"""The statistics of the latency benchmark, pure functions of lookup samples: percentiles,
summaries, the healthy ring's overhead ratios, and for a fault phase the wrong owners
counted per second and the onset rule (no wrong owner among lookups that started more than
ONSET seconds after the disturbance began). An answer naming a node that was stopped with
SIGSTOP is counted apart: right after the stop it is the node's last words, not a wrong
live owner, and its own target says by when those must end (STOPPED_NAMED_UNTIL)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

ONSET = 0.2  # seconds after a disturbance by which every lookup must name the right owner
TARGET_RATIO = 1.5  # healthy lookups over their chains of bare round trips, p50 and p99
TARGET_P50_OVER_RTT = 1.2  # healthy in-node lookup p50 over the bare gRPC round trip p50
TARGET_FROZEN_MAX = 0.5  # seconds: the slowest lookup while nodes are frozen
TARGET_HALF_DEAD_P99 = 0.02  # seconds: p99 once half the nodes were killed
# Seconds after a SIGSTOP by which no lookup names a stopped node: it spoke to its successor
# within three stabilize periods (1.5 s) and is taken for slow until then, plus the onset.
STOPPED_NAMED_UNTIL = 1.7


@dataclass
class Sample:
    at: float  # seconds from the start of the phase (a fault's: its disturbance) to the call
    latency: float
    answered: bool
    correct: bool
    hops: int = 0
    timeouts: int = 0
    skipped_owner: bool = False  # wrong, and the answer is the true owner's successor
    stopped_owner: bool = False  # wrong, and the answer is a node stopped with SIGSTOP
    in_node: float = 0.0  # the lookup itself, timed by the node (no client call)
    # Right after the lookup: hops + 1 bare Pings in a row from this process to random live
    # nodes, the round trips the lookup is made of (our call to the node and its hops),
    # each at the price a bare call pays at that moment.
    chain: float | None = None

    @property
    def wrong(self) -> bool:
        """Answered, naming another node than the true owner."""
        return self.answered and not self.correct


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summarize(samples: list[Sample]) -> dict[str, Any]:
    answered = [s for s in samples if s.answered]
    latencies = [s.latency for s in answered]
    total = len(samples)
    return {
        "lookups": total,
        "answered": len(answered),
        "failed": total - len(answered),
        "correct_owner": sum(s.correct for s in samples),
        "answered_rate": round(len(answered) / total, 4) if total else None,
        "correct_rate": round(sum(s.correct for s in samples) / total, 4) if total else None,
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies, default=None)),
        "in_node_p50_ms": ms(percentile([s.in_node for s in answered], 0.50)),
        "in_node_p99_ms": ms(percentile([s.in_node for s in answered], 0.99)),
        "mean_hops": round(statistics.fmean(s.hops for s in answered), 3) if answered else None,
        "mean_timeouts": (
            round(statistics.fmean(s.timeouts for s in answered), 3) if answered else None
        ),
        "lookups_with_timeouts": sum(1 for s in answered if s.timeouts),
    }


def seconds_of(samples: list[Sample], window: float = 0.0) -> int:
    """How many whole seconds the per-second lists of a phase cover: the window, or as far
    as its last lookup started."""
    last = max((s.at for s in samples), default=0.0)
    return max(math.ceil(window), math.floor(last) + 1)


def wrong_by_second(samples: list[Sample], window: float = 0.0) -> list[int]:
    """Wrong owners per second since the phase began, by when each lookup started."""
    counts = [0] * seconds_of(samples, window)
    for s in samples:
        if s.wrong and s.at >= 0:
            counts[math.floor(s.at)] += 1
    return counts


def stopped_after(samples: list[Sample], onset: float = STOPPED_NAMED_UNTIL) -> int:
    """Answers naming a stopped node among lookups that started after `onset`."""
    return sum(1 for s in samples if s.stopped_owner and s.at > onset)


def wrong_after(samples: list[Sample], onset: float = ONSET) -> int:
    """Wrong owners among lookups that started more than `onset` seconds after the
    disturbance began; a stopped node named is counted by `stopped_after` instead."""
    return sum(1 for s in samples if s.wrong and not s.stopped_owner and s.at > onset)


def fault_phase(
    samples: list[Sample],
    converged_after: dict[str, float | None] | None,
    *,
    window: float = 0.0,
    max_under: float | None = None,
    p99_under: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A fault phase's report. Its targets: no wrong owner after ONSET, and where given, the
    slowest lookup under `max_under` and p99 under `p99_under` seconds."""
    result = {**extra, **summarize(samples)}
    first = [s for s in samples if s.at < 1.0]
    result["first_second"] = {
        k: v
        for k, v in summarize(first).items()
        if k in ("lookups", "correct_rate", "p50_ms", "p99_ms", "max_ms")
    }
    seconds = seconds_of(samples, window)
    by_second = [[s for s in samples if math.floor(s.at) == i] for i in range(seconds)]
    result["lookups_by_second"] = [len(b) for b in by_second]
    result["correct_rate_by_second"] = [
        round(sum(s.correct for s in b) / len(b), 3) if b else None for b in by_second
    ]
    result["wrong_by_second"] = wrong_by_second(samples, window)
    result["wrong_after_200ms"] = wrong_after(samples)
    wrong = [s for s in samples if s.wrong]
    result["wrong_owner"] = {
        "count": len(wrong),
        "true_owner_skipped": sum(s.skipped_owner for s in wrong),
        "stopped_node_named": sum(s.stopped_owner for s in wrong),
        "last_at_s": round(max(s.at for s in wrong), 2) if wrong else None,
    }
    if converged_after is not None:
        result["converged_after_s"] = converged_after
    targets: dict[str, bool] = {"wrong_after_200ms == 0": result["wrong_after_200ms"] == 0}
    if any(s.stopped_owner for s in samples):
        late = stopped_after(samples)
        result["stopped_named_after_onset"] = late
        targets[f"stopped node named after {STOPPED_NAMED_UNTIL:g} s == 0"] = late == 0
    slowest, p99 = result["max_ms"], result["p99_ms"]
    if max_under is not None:
        limit = max_under * 1000
        targets[f"max_ms < {limit:g}"] = slowest is not None and slowest < limit
    if p99_under is not None:
        limit = p99_under * 1000
        targets[f"p99_ms < {limit:g}"] = p99 is not None and p99 < limit
    result["targets"] = targets
    result["target_met"] = all(targets.values())
    return result


def regression(samples: list[Sample]) -> dict[str, float] | None:
    """Latency = fixed + per_hop x hops, least squares over answered lookups."""
    answered = [s for s in samples if s.answered]
    if len({s.hops for s in answered}) < 2:
        return None
    slope, intercept = statistics.linear_regression(
        [float(s.hops) for s in answered], [s.latency for s in answered]
    )
    return {"per_hop_ms": ms(slope) or 0.0, "fixed_ms": ms(intercept) or 0.0}


def healthy_phase(
    samples: list[Sample], rtt: dict[str, Any], kademlia_p50_ms: float | None = None
) -> dict[str, Any]:
    result = summarize(samples)
    hops = result["mean_hops"] or 0.0
    p50, p99 = result["p50_ms"], result["p99_ms"]
    spread, same = rtt["median_ms"], rtt["same_node_median_ms"]
    # The target's first ratio: the lookup as the asked node timed it (without our call to
    # that node) against one bare gRPC round trip of this run; and with our call.
    in_p50 = result["in_node_p50_ms"]
    result["p50_over_rtt"] = round(in_p50 / spread, 3) if in_p50 is not None else None
    result["client_p50_over_rtt"] = round(p50 / spread, 3) if p50 is not None else None
    result["kademlia_p50_ms"] = kademlia_p50_ms
    if hops and p50 is not None and p99 is not None:
        # p50 over (mean hops x RTT), RTT = Ping to nodes taken in turn.
        result["overhead_ratio_p50"] = round(p50 / (hops * spread), 3)
        result["overhead_ratio_p99"] = round(p99 / (hops * spread), 3)
        # The same with the best-case RTT (always the same, warm node).
        result["overhead_ratio_p50_same_node_rtt"] = round(p50 / (hops * same), 3)
        # The client's own Lookup RPC to the asked node is one round trip more than the hops.
        result["overhead_ratio_p50_with_client_rpc"] = round(p50 / ((hops + 1) * spread), 3)
        # Against the calls a lookup cannot avoid, each at its measured price: our Lookup RPC
        # (a 0-hop lookup) plus `hops` calls made by a node.
        floor = rtt["lookup_0_hops_median_ms"] + hops * rtt["node_to_node_median_ms"]
        result["overhead_ratio_p50_vs_node_round_trips"] = round(p50 / floor, 3)
        # The lookup alone, as the asked node timed it: hops made by a node, each against
        # the node-to-node round trip measured in this run.
        in_p50, in_p99 = result["in_node_p50_ms"], result["in_node_p99_ms"]
        node_rtt = rtt["node_to_node_median_ms"]
        result["in_node_overhead_ratio_p50"] = round(in_p50 / (hops * node_rtt), 3)
        result["in_node_overhead_ratio_p99"] = round(in_p99 / (hops * node_rtt), 3)
    result["latency_fit"] = regression(samples)
    # Each lookup against a chain of as many bare round trips as it made (its hops and our
    # call to the node), timed by this process right after it, so both see the same load.
    # The ratios above divide by one median RTT, which says nothing about a p99 on a 2-core
    # machine carrying many processes.
    chained = [s for s in samples if s.answered and s.chain is not None]
    if chained:
        lookups = [s.latency for s in chained]
        chains = [s.chain for s in chained if s.chain is not None]
        reference = {
            "p50_ms": ms(percentile(chains, 0.50)),
            "p99_ms": ms(percentile(chains, 0.99)),
            "max_ms": ms(max(chains)),
        }
        result["bare_round_trip_chains"] = reference
        for q in ("p50", "p99"):
            mine, bare = result[f"{q}_ms"], reference[f"{q}_ms"]
            result[f"overhead_ratio_{q}_vs_chains"] = round(mine / bare, 3)
        result["lookups_over_their_chain_x1_5"] = sum(
            1 for lookup, chain in zip(lookups, chains, strict=True) if lookup > 1.5 * chain
        )
    over_rtt = result["p50_over_rtt"]
    targets = {
        f"p50_over_rtt <= {TARGET_P50_OVER_RTT}": (
            over_rtt is not None and over_rtt <= TARGET_P50_OVER_RTT
        ),
        f"overhead_ratio_p50_vs_chains <= {TARGET_RATIO}": (
            result.get("overhead_ratio_p50_vs_chains", math.inf) <= TARGET_RATIO
        ),
        f"overhead_ratio_p99_vs_chains <= {TARGET_RATIO}": (
            result.get("overhead_ratio_p99_vs_chains", math.inf) <= TARGET_RATIO
        ),
    }
    result["targets"] = targets
    result["target_met"] = all(targets.values())
    return result
