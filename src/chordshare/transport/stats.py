"""Counts a node keeps about its calls, for the metrics face: plain numbers, read when
scraped, so the lower layers do not depend on any metrics library."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# Upper bounds (seconds) of the latency buckets, as Prometheus histograms expect them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Latency:
    """A latency histogram: counts per bucket (the last for +Inf), their sum and count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or under it), +Inf last."""
        running, out = 0, []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.buckets, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class CallStats:
    """Calls to peers by method: latency of the answered ones, count of the failed ones."""

    latency: dict[str, Latency] = field(default_factory=lambda: defaultdict(Latency))
    failures: Counter[str] = field(default_factory=Counter)

    def answered(self, method: str, seconds: float) -> None:
        self.latency[method].observe(seconds)

    def failed(self, method: str) -> None:
        self.failures[method] += 1


@dataclass
class ByteCounts:
    """Bytes of file data moved, by peer address."""

    received: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
