"""Ring merge after a partition: what a node remembers of peers it lost, and what it makes
of a probe through one of them.

A partition that lasts long enough splits the ring into rings that each heal on their own
(every node drops the peers it cannot reach). Stabilize never looks outside a node's own
ring, so when the network heals they would stay apart. Simple ring unification (Shafaat,
Ghodsi and Haridi, "Dealing with network partitions in structured overlay networks", 2009)
joins them again: every node keeps a small *passive list* of peers it dropped as dead, and
now and then looks its own id up through one of them. If that peer is on another ring, the
answer is the node of that ring that follows us; when it lies between us and our successor
it is a closer successor than ours, and adopting it links the two rings at that point.
Stabilize and rectify spread the link until there is one ring again (every adoption moves a
successor strictly closer, as stabilize does, so the pointers cannot wind round twice).

This module only decides; `procedures.merge` makes the calls and the node runtime chooses
when and whom to probe.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from chordshare.chord.messages import NodeRef
from chordshare.ids import between

PASSIVE_PEERS = 32  # peers remembered after they were dropped
PASSIVE_MAX_AGE = 3600.0  # seconds a dropped peer stays worth probing


class Verdict(enum.Enum):
    """What a probe's answer (the node that follows us on the probed peer's ring) means."""

    ADOPT = "adopt"  # strictly between us and our successor: a closer successor
    SAME_RING = "same-ring"  # our own successor (or us): the probed peer is on our ring
    NOT_NEARER = "not-nearer"  # another node, not closer than our successor: nothing to do


def judge(me: NodeRef, successor: NodeRef, answer: NodeRef) -> Verdict:
    """Whether to adopt `answer` as successor (Shafaat's simple ring unification, with
    Zave's rule that the caller adopts it only once it answered).

    A node alone (its own successor) adopts any other node: (me, me) is the whole ring but
    me. A node with our id but another address is never adopted: two holders of one id
    cannot both be on one ring.
    """
    if answer.address == me.address or answer.address == successor.address:
        return Verdict.SAME_RING
    if answer.id != me.id and between(me.id, answer.id, successor.id):
        return Verdict.ADOPT
    return Verdict.NOT_NEARER


def merged_list(
    me: NodeRef,
    size: int,
    head: NodeRef,
    theirs: Iterable[NodeRef],
    ours: Iterable[NodeRef],
    r: int,
) -> list[NodeRef]:
    """A successor list after adopting `head`: head, then the nodes of both lists, clockwise
    from us, without repeats, cut to r. Keeping ours behind theirs means a head that dies at
    once leaves us on our old ring rather than alone; stabilize replaces the tail with the
    head's own list on its next round."""
    seen: dict[str, NodeRef] = {}
    for node in (head, *theirs, *ours):
        if node.address != me.address and node.id != me.id:
            seen.setdefault(node.address, node)
    start = (head.id - me.id) % size
    ranked = sorted(
        (n for n in seen.values() if (n.id - me.id) % size >= start),
        key=lambda n: (n.id - me.id) % size,
    )
    result: list[NodeRef] = []
    for node in ranked:
        if result and result[-1].id == node.id:
            continue  # two addresses claiming one id: keep the first seen
        result.append(node)
        if len(result) == r:
            break
    return result


@dataclass(slots=True)
class _Lost:
    node: NodeRef
    since: float


@dataclass(slots=True)
class PassiveList:
    """Peers that left this node's view: the ones worth probing for a ring on the other
    side of a partition. Bounded (the oldest go first) and aged out.

    `observe` is called with the node's view (successors, predecessor, fingers) after each
    maintenance round. A peer that was in the last view and is missing from this one was
    dropped: as dead, or replaced by a closer node. Both are kept: a finger to a peer
    across a partition is often replaced by a lookup that routed around it without ever
    calling it, so "it failed" is not something every node gets to see. A probe that finds
    a kept peer on our own ring drops it (the runtime calls `discard`), so in a ring
    without partitions the list empties as fast as the probes run. A peer that comes back
    into the view leaves the list.
    """

    capacity: int = PASSIVE_PEERS
    max_age: float = PASSIVE_MAX_AGE
    _lost: dict[str, _Lost] = field(default_factory=dict)
    _view: dict[str, NodeRef] = field(default_factory=dict)

    def observe(self, view: Iterable[NodeRef], now: float) -> None:
        current = {n.address: n for n in view}
        for address, node in self._view.items():
            if address not in current:
                self._lost.pop(address, None)
                self._lost[address] = _Lost(node, now)  # most recent last
        for address in current:
            self._lost.pop(address, None)
        self._view = current
        self._expire(now)

    def add(self, node: NodeRef, now: float) -> None:
        """Remember a peer as lost (e.g. one a probe found unreachable)."""
        if node.address not in self._view:
            self._lost.pop(node.address, None)
            self._lost[node.address] = _Lost(node, now)
            self._expire(now)

    def discard(self, address: str) -> None:
        self._lost.pop(address, None)

    def candidates(self, now: float) -> list[NodeRef]:
        """Lost peers still worth a probe, most recently lost first."""
        self._expire(now)
        return [lost.node for lost in reversed(self._lost.values())]

    def __contains__(self, address: object) -> bool:
        return address in self._lost

    def __len__(self) -> int:
        return len(self._lost)

    def _expire(self, now: float) -> None:
        for address in [a for a, lost in self._lost.items() if now - lost.since > self.max_age]:
            del self._lost[address]
        while len(self._lost) > self.capacity:
            del self._lost[next(iter(self._lost))]


__all__ = ["PASSIVE_MAX_AGE", "PASSIVE_PEERS", "PassiveList", "Verdict", "judge", "merged_list"]
