"""How fast file bytes may move: a token bucket shared fairly by the flows that use it.

A bucket of `rate` bytes per second is one cap (a node's uploads, its downloads, its repair
and scrubbing; a client's own transfer). A flow (one chunk stream, the scrubber) asks to
move n bytes; asks are granted in start-time fair queueing order (SFQ), so every flow that
waits gets an equal share of the rate, whatever the size or the number of its asks, and a
flow that asks for less than its share leaves the rest to the others.

The ask at the head is granted once the bucket holds its n bytes, so an ask of a megabyte
waits a megabyte's time at the rate and a transfer moves at the rate, not faster. An idle
bucket keeps at most `burst` bytes of credit (a few tens of milliseconds of the rate): the
most that moves before the cap bites. While an ask waits, credit may build up to its size
plus `burst`, so a waiter woken a little late loses nothing. From any moment, the bytes
granted never exceed `burst` + the largest ask + rate times the time since; from a bucket's
start, never `burst` + rate times the time since.

Rate 0 is no limit: every ask is granted at once. Plain values only: the caller says what
time it is (seconds, any monotonic origin) and carries the grants out (`sharing.throttle`).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass

BURST_SECONDS = 0.05  # an idle bucket's credit, in seconds of its rate
MIN_BURST = 16 * 1024  # bytes: a slow cap still lets a small message through at once
SLACK = 1e-3  # bytes of credit an ask may lack and still go (float rounding)
FORGET_OVER = 1024  # idle flows kept before the ones fully served are dropped


def default_burst(rate: float) -> float:
    return max(rate * BURST_SECONDS, MIN_BURST)


@dataclass(eq=False, slots=True)
class Ask:
    """A flow's ask to move `size` bytes; `granted` once it may."""

    flow: Hashable
    size: int
    start: float = 0.0  # its SFQ start tag: bytes of fair service before it
    granted: bool = False
    withdrawn: bool = False


class FairBucket:
    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError(f"a rate is not negative ({rate})")
        self.rate = rate
        self.burst = default_burst(rate) if burst is None else burst
        if self.burst < 0:
            raise ValueError(f"a burst is not negative ({self.burst})")
        self.tokens = self.burst  # an idle bucket is full
        self.stamp = now
        self.granted_bytes = 0
        self._queue: list[tuple[float, int, Ask]] = []  # by start tag, then arrival
        self._finish: dict[Hashable, float] = {}  # each flow's last finish tag
        self._virtual = 0.0  # the start tag of the ask granted last
        self._arrivals = 0

    @property
    def unlimited(self) -> bool:
        return self.rate == 0

    @property
    def waiting(self) -> int:
        """Asks not granted yet (withdrawn ones aside)."""
        return sum(not ask.withdrawn for _, _, ask in self._queue)

    def ask(self, flow: Hashable, size: int, now: float) -> Ask:
        """Ask to move `size` bytes for `flow`: granted at once without a limit, else by
        `grants` (call it next: this ask may be due now)."""
        if size < 0:
            raise ValueError(f"an ask is for no negative size ({size})")
        ask = Ask(flow, size)
        if self.unlimited:
            ask.granted = True
            self.granted_bytes += size
            return ask
        self._refill(now)
        if len(self._finish) > FORGET_OVER:
            self._finish = {f: t for f, t in self._finish.items() if t > self._virtual}
        ask.start = max(self._virtual, self._finish.get(flow, 0.0))
        self._finish[flow] = ask.start + size
        heapq.heappush(self._queue, (ask.start, self._arrivals, ask))
        self._arrivals += 1
        return ask

    def grants(self, now: float) -> list[Ask]:
        """The asks that may go now, in the order granted; their bytes leave the bucket."""
        if self.unlimited:
            return []
        self._refill(now)
        return self._grant(now)

    def next_grant_at(self, now: float) -> float | None:
        """When the ask at the head may go if nothing else changes; None if none waits."""
        head = self._head()
        if head is None:
            return None
        missing = head.size - self._tokens_at(now)
        if missing <= SLACK:
            return now
        return now + missing / self.rate

    def withdraw(self, ask: Ask, now: float) -> None:
        """Take back an ask not granted yet: its flow stopped waiting."""
        if ask.granted or ask.withdrawn:
            return
        self._refill(now)
        ask.withdrawn = True
        if self._finish.get(ask.flow) == ask.start + ask.size:
            self._finish[ask.flow] = ask.start  # its flow is not charged for it
        self._head()

    def forget(self, flow: Hashable) -> None:
        """A flow that ended: a new one under the same name starts afresh."""
        self._finish.pop(flow, None)

    # The bucket's arithmetic.

    def _head(self) -> Ask | None:
        while self._queue and self._queue[0][2].withdrawn:
            heapq.heappop(self._queue)
        return self._queue[0][2] if self._queue else None

    def _cap(self) -> float:
        head = self._head()
        return self.burst if head is None else head.size + self.burst

    def _tokens_at(self, now: float) -> float:
        elapsed = max(0.0, now - self.stamp)
        return min(self._cap(), self.tokens + self.rate * elapsed)

    def _refill(self, now: float) -> None:
        """Credit up to now, capped as the queue stood since the last change."""
        self.tokens = self._tokens_at(now)
        self.stamp = max(self.stamp, now)

    def _grant(self, now: float) -> list[Ask]:
        granted = []
        while (head := self._head()) is not None and self._may_go(head, now):
            heapq.heappop(self._queue)
            self.tokens -= head.size
            self._virtual = head.start
            head.granted = True
            self.granted_bytes += head.size
            granted.append(head)
        return granted

    def _may_go(self, head: Ask, now: float) -> bool:
        missing = head.size - self.tokens
        return missing <= SLACK or now + missing / self.rate <= now
