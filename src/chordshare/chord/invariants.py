"""Ring invariants, checked by tests and the simulator after every step.

`ring_problems` holds at every moment while fewer than r consecutive nodes fail (Zave's
safety invariants); `convergence_problems` holds once maintenance has caught up after the
last change: every pointer equals what the sorted list of live ids says it should be.
Both return a list of human-readable problems; empty means the invariant holds.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from chordshare.chord.messages import NodeRef
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace


def first_live_successor(state: RoutingState, live: Collection[str]) -> NodeRef | None:
    for node in state.successors:
        if node.address in live:
            return node
    return None


def ring_problems(states: Mapping[str, RoutingState], live: Collection[str]) -> list[str]:
    """Safety: every live node has a live successor, the successor lists are ordered, and
    following first live successors gives exactly one cycle, ordered by id, that every live
    node reaches (joiners not yet linked in hang off it as appendages)."""
    problems: list[str] = []
    nxt: dict[str, str] = {}
    for address in live:
        state = states[address]
        succ = first_live_successor(state, live)
        if succ is None:
            problems.append(f"{address} has no live successor in {state.successors}")
            continue
        nxt[address] = succ.address
        dists = [state.space.distance(state.me.id, n.id) for n in state.successors]
        if state.successors != [state.me] and any(
            b <= a for a, b in zip([0, *dists], dists, strict=False)
        ):
            problems.append(f"{address} has an unordered successor list {state.successors}")
    if problems:
        return problems
    cycles = _cycles(nxt)
    if len(cycles) != 1:
        problems.append(f"{len(cycles)} rings instead of one: {cycles}")
        return problems
    cycle = cycles[0]
    ids = [states[a].me.id for a in cycle]
    descents = sum(1 for a, b in zip(ids, ids[1:] + ids[:1], strict=True) if b <= a)
    if len(ids) > 1 and descents != 1:
        problems.append(f"the ring is not ordered by id: {ids}")
    return problems


def _cycles(nxt: Mapping[str, str]) -> list[list[str]]:
    """The cycles of a functional graph (each node has one out-edge)."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for start in nxt:
        path: list[str] = []
        node = start
        while node not in colour:
            colour[node] = 1
            path.append(node)
            node = nxt[node]
        if colour[node] == 1:
            cycles.append(path[path.index(node) :])
        for n in path:
            colour[n] = 2
    return cycles


@dataclass(frozen=True, slots=True)
class IdealRouting:
    """Pointers computed from the sorted list of live nodes: what convergence means."""

    nodes: list[NodeRef]  # sorted by id
    ids: list[int]
    position: dict[NodeRef, int]
    space: IdSpace

    @classmethod
    def of(cls, nodes: Collection[NodeRef], space: IdSpace) -> IdealRouting:
        ordered = sorted(nodes, key=lambda n: n.id)
        return cls(ordered, [n.id for n in ordered], {n: i for i, n in enumerate(ordered)}, space)

    def owner(self, key: int) -> NodeRef:
        i = bisect.bisect_left(self.ids, key)
        return self.nodes[i % len(self.nodes)]

    def successors(self, node: NodeRef, r: int) -> list[NodeRef]:
        i = self.position[node]
        n = len(self.nodes)
        if n == 1:
            return [node]
        return [self.nodes[(i + k) % n] for k in range(1, min(r, n - 1) + 1)]

    def predecessor(self, node: NodeRef) -> NodeRef | None:
        if len(self.nodes) == 1:
            return None
        return self.nodes[self.position[node] - 1]

    def fingers(self, node: NodeRef) -> list[NodeRef]:
        return [self.owner(self.space.finger_start(node.id, i)) for i in range(self.space.bits)]


def convergence_problems(
    states: Mapping[str, RoutingState], live: Collection[str], check_fingers: bool = True
) -> list[str]:
    """Liveness reached: successor lists, predecessors and fingers are the ideal ones, and
    the fingers' windows name no node that is gone."""
    if not live:
        return []
    space = states[next(iter(live))].space
    ideal = IdealRouting.of([states[a].me for a in live], space)
    problems: list[str] = []
    for address in live:
        state = states[address]
        want = ideal.successors(state.me, state.r)
        if state.successors != want:
            problems.append(f"{address} successors {state.successors} != {want}")
        want_pred = ideal.predecessor(state.me)
        if want_pred is not None and state.predecessor != want_pred:
            problems.append(f"{address} predecessor {state.predecessor} != {want_pred}")
        if check_fingers and state.fingers != ideal.fingers(state.me):
            problems.append(f"{address} fingers differ from the ideal table")
        if check_fingers:
            # A finger's window is a routing pointer too: a lookup may hop to any node in it.
            gone = {n.address for w in state.windows.values() for n in w} - set(live)
            if gone:
                problems.append(f"{address} has fingers' windows naming gone nodes {sorted(gone)}")
    return problems
