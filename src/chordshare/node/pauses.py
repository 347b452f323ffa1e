"""A node's own pauses at run time (the decisions are `chord.freshness`).

The node ticks a clock now and then and on every request that must reach a key's owner.
A gap longer than the window is a pause (`kill -STOP`, a suspended VM): the neighbours not
heard from since are suspected until they answer, and the node checks its view at once
(`ChordNode` starts that check when told).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chordshare.chord.freshness import Freshness
from chordshare.chord.state import RoutingState
from chordshare.transport.health import PeerHealth

log = logging.getLogger(__name__)


class PauseWatch:
    def __init__(
        self,
        state: RoutingState,
        health: PeerHealth,
        window: float,
        on_pause: Callable[[], None],
    ) -> None:
        self.state = state
        self.health = health
        self.freshness = Freshness(window)
        self.on_pause = on_pause  # told once per pause, to check the view

    def tick(self) -> None:
        freshness = self.freshness
        if not freshness.tick(time.monotonic()):
            return
        resumed = freshness.resumed_at
        state = self.state
        log.warning("node %s was paused; checking its neighbours", state.me.id)
        for peer in (state.predecessor, *state.successors):
            if peer is not None and peer != state.me:
                heard = self.health.last_answer(peer.address)
                if heard is None or resumed is None or heard < resumed:
                    self.health.suspect(peer.address)
        self.on_pause()

    def unchecked(self) -> bool:
        """Whether the node's view is unchecked since it was last paused."""
        self.tick()
        return self.freshness.unchecked(self.state, self.health.last_answer)

    def listened_for(self, window: float) -> bool:
        """Whether the node ran for `window` since its last pause (see
        `Freshness.listened_for`)."""
        self.tick()
        return self.freshness.listened_for(time.monotonic(), window)

    def paused_since(self, moment: float) -> bool:
        """Whether a pause ended after `moment` (see `Freshness.paused_since`)."""
        self.tick()
        return self.freshness.paused_since(moment)
