"""The changes a node still passes on, and to whom (SWIM's infection-style dissemination).

Each change goes to about λ·log2 N distinct peers, never twice to the same peer nor back to
the one it came from: a node's maintenance calls go to the same few neighbours again and
again, and counting sends alone would spend a change's sends on nodes that know it already.
A change is also kept until the node's ring neighbours (`keep_for`) have it: a node that
every one of its callers had stopped telling would otherwise wait for a digest repair,
and with it each node that knows a change hands it on along the ring.
Pure: the caller passes the peers' addresses and the time.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chordshare.chord.membership import MemberEvent

# λ of λ·log2 N: how many peers, per doubling of the ring, each change is sent to.
DEFAULT_FANOUT_FACTOR = 1.0


def fanout(members: int, factor: float = DEFAULT_FANOUT_FACTOR) -> int:
    """How many distinct peers a change goes to, in a table of `members` live members."""
    return max(1, math.ceil(factor * math.log2(members + 1)))


@dataclass(slots=True)
class Rumor:
    event: MemberEvent
    born: float
    informed: set[str] = field(default_factory=set)  # peers sent to, or heard from


class Rumors:
    """At most one rumor per node id: a newer event about a node replaces the older one."""

    def __init__(self, factor: float = DEFAULT_FANOUT_FACTOR) -> None:
        self.factor = factor
        self.by_id: dict[int, Rumor] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def add(self, event: MemberEvent, now: float, source: str | None) -> None:
        informed = {source} if source is not None else set()
        self.by_id[event.id] = Rumor(event, now, informed)

    def take(
        self, peer: str, max_events: int, members: int, keep_for: Collection[str] = ()
    ) -> list[MemberEvent]:
        """Up to max_events rumors `peer` has not had from us, least spread first; each
        counts `peer` as informed, and is dropped once it reached its fanout and every
        peer of `keep_for`."""
        if max_events <= 0 or not self.by_id:
            return []
        fresh = [r for r in self.by_id.values() if peer not in r.informed]
        fresh.sort(key=lambda r: (len(r.informed), -r.born, r.event.id))
        limit = fanout(members, self.factor)
        taken = []
        for rumor in fresh[:max_events]:
            taken.append(rumor.event)
            rumor.informed.add(peer)
            informed = rumor.informed
            if len(informed) >= limit and all(p in informed for p in keep_for):
                del self.by_id[rumor.event.id]
        return taken

    def expire(self, horizon: float) -> None:
        """Drop rumors born before `horizon`: nobody is left to tell them to."""
        for ident in [i for i, r in self.by_id.items() if r.born < horizon]:
            del self.by_id[ident]


__all__ = ["DEFAULT_FANOUT_FACTOR", "Rumor", "Rumors", "fanout"]
