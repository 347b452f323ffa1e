"""A node's routing state and the protocol's local decisions.

Follows Zave's corrected Chord ("How to make Chord correct", arXiv 1610.01140): a successor
list of length r, a joiner adopts its successor's list, notify is handled by rectify, and a
pointer learned from another node is adopted only after that node answered (the procedures
in `procedures` make the calls; this module only decides).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from chordshare.chord.messages import Neighbors, NodeRef, StepReply
from chordshare.ids import IdSpace, between, between_right

DEFAULT_SUCCESSORS = 8
# How many next-hop candidates a lookup step offers; the extra ones let the asker route
# around a dead hop without going back.
STEP_CANDIDATES = 4

NO_AVOID: frozenset[str] = frozenset()
# Silent predecessors whose keys a node holds until they answer again: a few, as each was
# once next to it and at most r in a row fail.
MAX_ABSORBED = 4


class DuplicateIdError(Exception):
    """A joiner's id is already held by another live node."""

    def __init__(self, ident: int, holder: NodeRef) -> None:
        super().__init__(f"id {ident} is already held by the node at {holder.address}")
        self.holder = holder


@dataclass(slots=True)
class RoutingState:
    """Predecessor, successor list and finger table of one node."""

    me: NodeRef
    space: IdSpace
    r: int = DEFAULT_SUCCESSORS
    predecessor: NodeRef | None = None
    # Never empty: a node alone on its ring is its own successor.
    successors: list[NodeRef] = field(default_factory=list)
    # fingers[i] is believed to be successor(me + 2**i); None until learned.
    fingers: list[NodeRef | None] = field(default_factory=list)
    # A finger's window: the finger and the nodes after it, clockwise, as the lookup that
    # found it reported them (that node's successor list). Only routing candidates, never
    # an owner: a lookup still ends at a node whose own list covers the key.
    windows: dict[str, tuple[NodeRef, ...]] = field(default_factory=dict)
    # Predecessors that went silent and whose keys we took over, newest first, with when:
    # each is probed, and gets its keys back the moment it answers (`hand_back`), so a node
    # that was only paused owns its keys again at once.
    absorbed: list[tuple[NodeRef, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"the successor list needs at least 1 entry, got {self.r}")
        self.space.check(self.me.id)
        if not self.successors:
            self.successors = [self.me]
        if not self.fingers:
            self.fingers = [None] * self.space.bits

    # Reading the state.

    @property
    def successor(self) -> NodeRef:
        return self.successors[0]

    @property
    def alone(self) -> bool:
        return self.successors[0] == self.me

    def known_peers(self) -> list[NodeRef]:
        """Every other node this state points at, without repeats."""
        seen: dict[str, NodeRef] = {}
        for node in (*self.successors, *self.fingers, self.predecessor):
            if node is not None and node != self.me:
                seen.setdefault(node.address, node)
        return list(seen.values())

    def owns(self, key: int) -> bool:
        """Whether key falls in (predecessor, me]. A node alone owns every key."""
        if self.alone:
            return True
        return self.predecessor is not None and between_right(self.predecessor.id, key, self.me.id)

    def neighbors(self) -> Neighbors:
        return Neighbors(self.me, self.predecessor, tuple(self.successors))

    # Lookup decisions.

    def step(self, key: int, avoid: Container[str] = NO_AVOID) -> StepReply:
        """One step of an iterative lookup, answered from this node's state."""
        me, successors = self.me.id, self.successors
        # A key anywhere within our successor list is answered at once, not one hop later
        # by the successor before it: the Chord paper's -1/2 log2 r saving. The answer
        # starts at the first successor whose arc covers the key: the owner's candidates in
        # order, each of which confirms it or says where the owner is (`ownership`).
        if between_right(me, key, successors[-1].id):
            first = next(i for i, s in enumerate(successors) if between_right(me, key, s.id))
            return StepReply(done=True, nodes=tuple(successors[first:]))
        return StepReply(done=False, nodes=tuple(self.closest_preceding(key, avoid)))

    def closest_preceding(
        self, key: int, avoid: Container[str] = NO_AVOID, limit: int = STEP_CANDIDATES
    ) -> list[NodeRef]:
        """Known nodes in (me, key), closest to key first, skipping suspected addresses.

        Uses fingers and the successor list alike: the list shortens the last hops
        (the Chord paper's ½·log2 r saving).
        """
        me = self.me.id
        size = self.space.size
        # (me, me) is the whole ring but me: a lookup of our own id may go anywhere.
        gap = (key - me) % size or size
        found: dict[str, NodeRef] = {}
        # Every finger is read: a stale table is not ordered (fix_fingers keeps an owner that
        # precedes its start, a lower finger may point past a higher one), so no shortcut
        # that assumes order is safe. Runs of one owner are skipped by identity, cheaply.
        last: NodeRef | None = None
        for node in self.fingers:
            if node is last or node is None:
                continue
            last = node
            address = node.address
            if 0 < (node.id - me) % size < gap and address not in avoid:
                found[address] = node
        for node in self.successors:
            address = node.address
            if address not in found and address not in avoid and 0 < (node.id - me) % size < gap:
                found[address] = node
        # The nodes just before the key in each finger's window: a hop to one of them ends
        # the lookup there, from its own successor list, instead of halving the gap again.
        for window in self.windows.values():
            # A window runs in increasing distance from us, so the nodes before the key
            # are a prefix; only the last `limit` of them not avoided can be among the best.
            end = bisect_left(window, gap, key=lambda n: (n.id - me) % size)
            taken = 0
            for node in reversed(window[:end]):
                if node.address not in avoid:
                    found.setdefault(node.address, node)
                    taken += 1
                    if taken == limit:
                        break
        ranked = sorted(found.values(), key=lambda n: (key - n.id) % size)
        return ranked[:limit]

    # Updates from what peers said.

    def adopt_successors(self, head: NodeRef, their_successors: Iterable[NodeRef]) -> None:
        """Make head our successor, followed by head's own list (Zave: a node's list is its
        successor plus that successor's list, cut to r entries)."""
        self.successors = self._ordered_list([head, *their_successors])

    def _ordered_list(self, nodes: Iterable[NodeRef]) -> list[NodeRef]:
        """Cut a candidate list so it runs clockwise from me, without me or repeats."""
        result: list[NodeRef] = []
        last = 0
        for node in nodes:
            if node == self.me or node.id == self.me.id:
                break
            dist = (node.id - self.me.id) % self.space.size
            if dist <= last:
                break
            result.append(node)
            last = dist
            if len(result) == self.r:
                break
        return result or [self.me]

    def rectify(self, candidate: NodeRef) -> bool:
        """Handle a notify: adopt candidate as predecessor when it is closer than the one we
        have, or ours is gone (Zave's rectify). Returns whether it was adopted.

        Gone means cleared by `check_predecessor` after it stopped answering us, not merely
        suspected: a suspicion is one failed call, and a notifier past a predecessor we only
        suspect may be a node whose own list wrapped round the ring on a busy moment; taking
        it would claim nearly every key."""
        if candidate.id == self.me.id:
            return False
        pred = self.predecessor
        if pred is None or between(pred.id, candidate.id, self.me.id):
            self.predecessor = candidate
            # It spoke to us: it is no silent node whose keys we hold.
            self.absorbed = [(n, t) for n, t in self.absorbed if n != candidate]
            return True
        return False

    def forget(self, peer: NodeRef) -> None:
        """Drop every pointer to a peer that failed to answer."""
        self.successors = [n for n in self.successors if n.address != peer.address] or [self.me]
        if self.predecessor is not None and self.predecessor.address == peer.address:
            self.predecessor = None
        self.fingers = [
            None if f is not None and f.address == peer.address else f for f in self.fingers
        ]
        self.windows.pop(peer.address, None)
        for owner, window in list(self.windows.items()):
            if any(n.address == peer.address for n in window):
                self.windows[owner] = tuple(n for n in window if n.address != peer.address)

    def absorb(self, silent: NodeRef, now: float) -> None:
        """Our predecessor stopped answering: take its keys until it answers again."""
        if self.predecessor is not None and self.predecessor.address == silent.address:
            self.predecessor = None
        kept = [(n, t) for n, t in self.absorbed if n.address != silent.address]
        self.absorbed = [(silent, now), *kept][:MAX_ABSORBED]

    def absorbed_nodes(self) -> list[NodeRef]:
        return [n for n, _ in self.absorbed]

    def hand_back(self, node: NodeRef) -> bool:
        """An absorbed node answered: it is our predecessor again if it still lies between
        the one we have and us. Returns whether it was adopted."""
        if not any(n == node for n, _ in self.absorbed):
            return False
        self.absorbed = [(n, t) for n, t in self.absorbed if n != node]
        pred = self.predecessor
        if pred is None or between(pred.id, node.id, self.me.id):
            self.predecessor = node
            return True
        return False

    def called_by(self, address: str) -> bool:
        """A node called us: one whose keys we absorbed runs again, and gets them back
        (`hand_back`) without waiting for our probe, which a host busy after a pause answers
        only once it has worked through what queued up. Returns whether it was adopted."""
        silent = next((n for n, _ in self.absorbed if n.address == address), None)
        return silent is not None and self.hand_back(silent)

    def expire_absorbed(self, now: float, ttl: float) -> None:
        """Stop waiting for silent predecessors after ttl, and for those no longer between
        our predecessor and us (a closer node took their place)."""
        pred = self.predecessor
        self.absorbed = [
            (n, t)
            for n, t in self.absorbed
            if now - t <= ttl and (pred is None or between(pred.id, n.id, self.me.id))
        ]

    def on_leave_notice(
        self,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: Iterable[NodeRef],
    ) -> None:
        """Relink around a neighbour that leaves gracefully."""
        if leaving == self.me:
            return
        self.absorbed = [(n, t) for n, t in self.absorbed if n != leaving]
        was_successor = self.successors[0] == leaving
        was_predecessor = self.predecessor == leaving
        remaining = [n for n in self.successors if n != leaving]
        handed = [n for n in successors if n != leaving]
        self.forget(leaving)
        if was_successor and handed:
            self.successors = self._ordered_list(handed)
        elif remaining:
            self.successors = self._ordered_list(remaining)
        if was_predecessor and predecessor is not None and predecessor != self.me:
            self.predecessor = predecessor

    # Fingers.

    def finger_starts(self) -> list[int]:
        return [self.space.finger_start(self.me.id, i) for i in range(self.space.bits)]

    def fill_fingers_from(self, index: int, owner: NodeRef, after: Iterable[NodeRef] = ()) -> int:
        """Set finger `index` to owner, and every following finger whose start also falls in
        (me, owner]: they share that owner. `after`: the nodes that follow owner, clockwise,
        kept as its window. Returns the next index still to look up."""
        self.keep_window(owner, after)
        i = index
        while i < self.space.bits and between_right(
            self.me.id, self.space.finger_start(self.me.id, i), owner.id
        ):
            self.fingers[i] = owner
            i += 1
        if i == index:  # owner precedes the start (a stale answer): keep it anyway
            self.fingers[i] = owner
            i += 1
        return i

    def keep_window(self, owner: NodeRef, after: Iterable[NodeRef]) -> None:
        """Remember owner's window: owner and the nodes after it, up to r, cut where the list
        would pass us again."""
        me, size = self.me.id, self.space.size
        if owner.id == me:
            self.windows.pop(owner.address, None)
            return
        window = [owner]
        last = (owner.id - me) % size
        for node in after:
            distance = (node.id - me) % size
            if not last < distance or len(window) >= self.r:  # wrapped past us, or enough
                break
            window.append(node)
            last = distance
        if len(window) > 1:
            self.windows[owner.address] = tuple(window)
        else:  # an older window may name nodes gone since
            self.windows.pop(owner.address, None)

    def prune_windows(self) -> None:
        """Drop the windows of nodes that are no longer fingers."""
        current = {f.address for f in self.fingers if f is not None}
        for address in [a for a in self.windows if a not in current]:
            del self.windows[address]

    def distinct_fingers(self) -> list[NodeRef]:
        seen: dict[str, NodeRef] = {}
        for f in self.fingers:
            if f is not None:
                seen.setdefault(f.address, f)
        return list(seen.values())
