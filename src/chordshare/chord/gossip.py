"""One node's side of the membership exchange: what each peer call and its reply carry.

Around every call of the ring protocol, whatever carries it (gRPC, the in-memory transport,
the simulator):

- the request carries up to `max_events` of the caller's queued changes and, once every
  `digest_seconds`, the caller's digest (`to_send`); the peer applies the changes
  (`received`) before it answers;
- the reply carries the peer's changes for the caller and, when the caller's digest differs
  from the peer's, the peer's entries for the arcs that differ (`to_answer`); the caller
  applies them (`received`);
- a call that finds nothing listening at the peer declares it failed (`unreachable`);
- a leaving node's departure goes first in what it sends from then on (`Membership.leave`).

Pure: addresses and the time are passed in. `chord.membership` holds the table itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from chordshare.chord.membership import Digest, MemberEvent, Membership

MAX_EVENTS = 8  # changes attached to one message at most
DIGEST_SECONDS = 10.0  # how often a node sends its digest along


@dataclass(frozen=True, slots=True)
class Gossip:
    """What one message carries. `repair`: entries sent in answer to a digest that
    differed; on the wire they are events like the others."""

    events: tuple[MemberEvent, ...] = ()
    digest: Digest | None = None
    repair: tuple[MemberEvent, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events or self.repair or self.digest is not None)


NOTHING = Gossip()


class Gossiper:
    """The exchange for one node's table. `digest_due`: when its first digest goes out
    (at once: a newcomer pulls the table with its first call)."""

    def __init__(
        self,
        table: Membership,
        max_events: int = MAX_EVENTS,
        digest_seconds: float = DIGEST_SECONDS,
        digest_due: float = 0.0,
    ) -> None:
        self.table = table
        self.max_events = max_events
        self.digest_seconds = digest_seconds
        self.digest_due = digest_due

    def to_send(self, peer: str, now: float, neighbours: Collection[str] = ()) -> Gossip:
        """What a request to `peer` carries. `neighbours`: the addresses of our successor
        and predecessor, which every change must reach."""
        table = self.table
        events = table.outgoing(peer, self.max_events, neighbours)
        digest = None
        if now >= self.digest_due:
            self.digest_due = now + self.digest_seconds
            table.expire(now)
            digest = table.digest()
        if not events and digest is None:
            return NOTHING
        return Gossip(tuple(events), digest)

    def to_answer(
        self, peer: str, asked: Gossip, now: float, neighbours: Collection[str] = ()
    ) -> Gossip:
        """What the reply to `peer`'s request carries, once its gossip was `received`."""
        table = self.table
        events = table.outgoing(peer, self.max_events, neighbours)
        repair: list[MemberEvent] = []
        if asked.digest is not None and not table.over_cap:
            repair = table.entries_for(table.diff(asked.digest))
        if not events and not repair:
            return NOTHING
        return Gossip(tuple(events), None, tuple(repair))

    def received(self, peer: str, gossip: Gossip, now: float) -> int:
        """Apply what a request or reply from `peer` carried; how many entries changed."""
        if not gossip:
            return 0
        return self.table.apply((*gossip.events, *gossip.repair), now, peer)

    def unreachable(self, peer: str, now: float) -> bool:
        """Nothing listens at `peer` any more: spread its failure. Whether that was news."""
        ident = self.table.id_at(peer)
        return ident is not None and self.table.declare_failed(ident, now)


__all__ = ["DIGEST_SECONDS", "MAX_EVENTS", "NOTHING", "Gossip", "Gossiper"]
