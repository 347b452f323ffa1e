"""Whether a node may trust its own view of the ring right now: not right after a pause.

A node that was paused (`kill -STOP`, a suspended VM, a laptop asleep) longer than the
ring's failure-detection window comes back with pointers the ring moved on from: its
successor took over its keys, and a node may have joined just before it. It sees the pause
as a gap in its own monotonic clock. Until its predecessor and its successor have answered
it again, it claims no key: a request that must reach a key's owner is refused for a moment
(the caller asks again), never answered from the old view. Times are plain numbers handed
in; no clock is read here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chordshare.chord.state import RoutingState

# How long a caller waits before asking a node that is checking its view again: a few
# round trips, the time a check takes.
RETRY_AFTER = 0.025


@dataclass(slots=True)
class Freshness:
    """The clock gaps a node saw, and whether its view has been checked since the last."""

    window: float  # longer than this without a tick is a pause
    last_tick: float | None = None
    resumed_at: float | None = None  # the end of the last pause
    checked: bool = True  # the view was checked since that pause

    def tick(self, now: float) -> bool:
        """The node ran at `now`; True when it had been paused until then."""
        paused = self.last_tick is not None and now - self.last_tick > self.window
        self.last_tick = max(now, self.last_tick or now)
        if paused:
            self.resumed_at, self.checked = now, False
        return paused

    def paused_since(self, moment: float) -> bool:
        """Whether a pause ended after `moment`: a call sent before it that failed is no
        word about its peer (its deadline ran out while this node stood still)."""
        return self.resumed_at is not None and self.resumed_at > moment

    def listened_for(self, now: float, window: float) -> bool:
        """Whether the node has run for `window` since its last pause. A neighbour's silence
        over a shorter time says nothing: it may be back from the same pause, its calls
        queued behind all that piled up while it stood still."""
        return self.resumed_at is None or now - self.resumed_at >= window

    def unchecked(self, state: RoutingState, last_answer: Callable[[str], float | None]) -> bool:
        """Whether the view is still unchecked since the last pause: its predecessor or its
        successor has not answered since. `last_answer`: when a peer last answered us."""
        if self.checked or self.resumed_at is None:
            return False
        for node in (state.predecessor, None if state.alone else state.successor):
            if node is not None and node != state.me:
                heard = last_answer(node.address)
                if heard is None or heard < self.resumed_at:
                    return True
        self.checked = True  # trusted until the next pause
        return False
