"""The protocol's procedures as generators: they yield calls and receive replies.

A driver (the node runtime over gRPC, the simulator over its in-memory network) sends each
yielded call and sends back the peer's reply, or `Unreachable` when the call failed. A driver
also remembers which peers failed; procedures receive that as `avoid` (addresses).

State may change between two yields (a notify or leave notice handled meanwhile), so every
procedure reads the state afresh after each reply instead of holding on to what it saw.

The lookup that join, stabilize, merge and fix_fingers build on is in `lookup`.
"""

from __future__ import annotations

from collections.abc import Container, Generator
from dataclasses import dataclass

from chordshare.chord import ownership
from chordshare.chord.lookup import LookupFailed, find_successor
from chordshare.chord.merge import Verdict, judge, merged_list
from chordshare.chord.messages import (
    Ack,
    Call,
    ConfirmOwner,
    FindStep,
    GetNeighbors,
    LeaveNotice,
    Neighbors,
    NodeRef,
    Notify,
    Ping,
    Pong,
    Reply,
    Unreachable,
)
from chordshare.chord.state import NO_AVOID, DuplicateIdError, RoutingState
from chordshare.ids import between


class JoinFailed(Exception):
    """The ring could not be joined through the given node."""


def join(
    state: RoutingState, bootstrap: NodeRef, avoid: Container[str] = NO_AVOID
) -> Generator[Call, Reply, NodeRef]:
    """Join the ring that bootstrap is on: find our successor, take its list, notify it.

    Refuses (DuplicateIdError) when another live node already holds our id.
    """
    result = yield from find_successor(state, state.me.id, avoid, start=bootstrap, joining=True)
    owner = result.owner
    if owner.id == state.me.id:
        raise DuplicateIdError(state.me.id, owner)
    answer = yield GetNeighbors(owner)
    if not isinstance(answer, Neighbors):
        raise JoinFailed(f"successor {owner.address} stopped answering while we joined")
    owner, answer = yield from _nearer_successor(state, owner, answer, avoid)
    state.predecessor = None
    state.adopt_successors(owner, answer.successors)
    yield Notify(state.successor, state.me)
    return owner


def stabilize(
    state: RoutingState, avoid: Container[str] = NO_AVOID
) -> Generator[Call, Reply, None]:
    """Zave's stabilize: find the first live successor, take its list, adopt its predecessor
    if that lies between us and it and answers, then notify the successor."""
    neighbors: Neighbors | None = None
    while neighbors is None:
        succ = state.successor
        if succ == state.me:
            recovered = yield from _recover_successor(state, avoid)
            if recovered is None:
                return
            succ, neighbors = recovered
            break
        answer = yield GetNeighbors(succ)
        if isinstance(answer, Neighbors) and answer.node == succ:
            if succ not in state.successors:
                # A leave notice relinked us around succ while we waited: its answer is
                # stale, and adopting it would make a node that has gone our successor.
                continue
            neighbors = answer
        elif (yield from _still_linked(state, succ)):
            return  # its successor still hears it: keep it (lookups route around it)
        else:
            state.forget(succ)
    state.adopt_successors(succ, neighbors.successors)
    pred = neighbors.predecessor
    if pred is not None and pred != state.me and between(state.me.id, pred.id, succ.id):
        answer = yield GetNeighbors(pred)
        # Adopt the closer node only once it answered (Zave), and only if it still fits.
        if (
            isinstance(answer, Neighbors)
            and answer.node == pred
            and between(state.me.id, pred.id, state.successor.id)
        ):
            state.adopt_successors(pred, answer.successors)
    if state.successor != state.me:
        yield Notify(state.successor, state.me)


def _still_linked(state: RoutingState, succ: NodeRef) -> Generator[Call, Reply, bool]:
    """Our successor did not answer. Is it still its own successor's predecessor? Then that
    node hears it: our link to it is lossy or it is slow, not dead, and dropping it would
    shrink our list for nothing (we take the rest of the list from that node meanwhile).
    A node that died or hangs is dropped once its successor stopped hearing it too."""
    after = [n for n in state.successors if n != succ and n != state.me]
    if not after or succ not in state.successors:
        return False
    nxt = after[0]
    answer = yield GetNeighbors(nxt)
    if not (isinstance(answer, Neighbors) and answer.node == nxt):
        return False
    if answer.predecessor != succ or succ not in state.successors:
        return False
    state.adopt_successors(succ, (nxt, *answer.successors))
    return True


def _recover_successor(
    state: RoutingState, avoid: Container[str]
) -> Generator[Call, Reply, tuple[NodeRef, Neighbors] | None]:
    """We are our own successor. Either we are alone (then a node that notified us is our
    way onto a ring of two), or every successor failed (then look ourselves up through any
    other node we still know, which rebuilds the list in O(log N) hops)."""
    others = [n for n in state.distinct_fingers() if n != state.me]
    for start in others:
        try:
            result = yield from find_successor(state, state.me.id, avoid, start=start, joining=True)
        except LookupFailed:
            continue
        answer = yield GetNeighbors(result.owner)
        if isinstance(answer, Neighbors) and answer.node == result.owner:
            return (yield from _nearer_successor(state, result.owner, answer, avoid))
    pred = state.predecessor
    if pred is None or pred == state.me:
        return None
    answer = yield GetNeighbors(pred)
    if isinstance(answer, Neighbors) and answer.node == pred:
        if state.predecessor != pred:
            return None  # it left (a leave notice cleared it) while we waited: stay alone
        return pred, answer
    state.forget(pred)
    return None


def _nearer_successor(
    state: RoutingState, owner: NodeRef, neighbors: Neighbors, avoid: Container[str]
) -> Generator[Call, Reply, tuple[NodeRef, Neighbors]]:
    """Check a lookup's answer for our own id against what that owner knows, before we adopt
    its list. A lookup answered from a stale successor list (one that skips nodes joined
    since, its other entries dead) can name a node far past us; adopting it would cut its
    list down to that one node, and leave us with no live successor when it goes. A node
    the owner knows (its predecessor or a successor) that lies between us and it is nearer:
    move to the nearest one that answers, at most r times (each move gets strictly nearer;
    stabilize finishes what is left)."""
    me = state.me.id
    for _ in range(state.r):
        nearer = [
            n
            for n in (neighbors.predecessor, *neighbors.successors)
            if n is not None
            and n.id != me
            and n.address not in avoid
            and between(me, n.id, owner.id)
        ]
        if not nearer:
            break
        best = min(nearer, key=lambda n: (n.id - me) % state.space.size)
        answer = yield GetNeighbors(best)
        if not (isinstance(answer, Neighbors) and answer.node == best):
            break  # keep the answer we have: stabilize will walk back from it
        owner, neighbors = best, answer
    return owner, neighbors


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What a merge probe found: the node that follows us on the probed peer's ring (None
    when the lookup failed), and the verdict on it; `adopted` once it became our successor."""

    answer: NodeRef | None
    verdict: Verdict | None
    adopted: bool = False


def merge(
    state: RoutingState, peer: NodeRef, avoid: Container[str] = NO_AVOID
) -> Generator[Call, Reply, MergeResult]:
    """Simple ring unification (see `chord.merge`): look our own id up through `peer`, a
    node we lost; if the answer lies strictly between us and our successor, it is on a ring
    we are not linked to (or a closer node of ours): adopt it once it answered, with the
    nearer nodes it knows checked as a join does, and notify it. Stabilize and rectify then
    link the rest of both rings."""
    try:
        result = yield from find_successor(state, state.me.id, avoid, start=peer, joining=True)
    except LookupFailed:
        return MergeResult(None, None)
    answer = result.owner
    verdict = judge(state.me, state.successor, answer)
    if verdict is not Verdict.ADOPT:
        return MergeResult(answer, verdict)
    reply = yield GetNeighbors(answer)
    if not (isinstance(reply, Neighbors) and reply.node == answer):
        return MergeResult(answer, verdict)
    head, neighbors = yield from _nearer_successor(state, answer, reply, avoid)
    # Our successor may have moved while we waited: adopt only what is still closer.
    if judge(state.me, state.successor, head) is not Verdict.ADOPT:
        return MergeResult(answer, verdict)
    state.successors = merged_list(
        state.me, state.space.size, head, neighbors.successors, state.successors, state.r
    )
    yield Notify(head, state.me)
    return MergeResult(head, verdict, adopted=True)


def check_predecessor(
    state: RoutingState,
    now: float = 0.0,
    heard: Container[str] = NO_AVOID,
    listened: bool = True,
) -> Generator[Call, Reply, None]:
    """Clear a predecessor that does not answer, so the next notify can replace it; its keys
    are ours until it answers again (`RoutingState.absorb`). One that called us a moment
    ago (`heard`: it notifies us every stabilize period) is kept: our link to it is lossy,
    it is not gone. So is any that still listens, while we have not `listened` that long
    since a pause of our own (`Freshness.listened_for`): we claim no key until it answers.
    When it answers, it names its successor: a node that joined between it and us is our
    predecessor once it answers (a node back from a pause learns so at once, rather than
    when that node notifies it)."""
    pred = state.predecessor
    if pred is None or pred == state.me:
        return
    answer = yield GetNeighbors(pred)
    if not (isinstance(answer, Neighbors) and answer.node == pred):
        refused = isinstance(answer, Unreachable) and answer.refused
        silent = listened and pred.address not in heard
        if state.predecessor == pred and (refused or silent):
            state.absorb(pred, now)
        return
    closer = answer.successors[0]
    if closer == state.me or not between(pred.id, closer.id, state.me.id):
        return
    reply = yield Ping(closer)
    if isinstance(reply, Pong) and reply.node == closer:
        state.rectify(closer)


def reclaim(state: RoutingState) -> Generator[Call, Reply, int]:
    """Ping the predecessors whose keys we took when they went silent; each that answers
    gets its keys back at once (`RoutingState.hand_back`). Returns how many did."""
    handed = 0
    for node in state.absorbed_nodes():
        answer = yield Ping(node)
        if isinstance(answer, Pong) and answer.node == node and state.hand_back(node):
            handed += 1
    return handed


def fix_fingers(
    state: RoutingState, avoid: Container[str] = NO_AVOID
) -> Generator[Call, Reply, int]:
    """Refresh the whole finger table. Fingers that share an owner are filled together, so
    this costs about log2 N lookups, not m. Returns the number of lookups made."""
    if state.alone:
        state.fingers = [state.me] * state.space.bits
        return 0
    lookups = 0
    i = state.fill_fingers_from(0, state.successor, state.successors[1:])
    while i < state.space.bits:
        start = state.space.finger_start(state.me.id, i)
        try:
            result = yield from find_successor(state, start, avoid)
        except LookupFailed:
            return lookups
        lookups += 1
        i = state.fill_fingers_from(i, result.owner, result.after)
    state.prune_windows()
    return lookups


def leave(state: RoutingState) -> Generator[Call, Reply, None]:
    """Graceful leave: hand our successor our predecessor, and our predecessor our
    successor list, so both relink at once instead of waiting to notice we are gone."""
    if state.alone:
        return
    pred = state.predecessor
    successors = tuple(state.successors)
    succ = successors[0]
    # Replies carry nothing; a neighbour that does not answer finds out by stabilizing.
    yield LeaveNotice(succ, state.me, pred, ())
    if pred is not None and pred not in (state.me, succ):  # in a ring of two, succ is pred
        yield LeaveNotice(pred, state.me, None, successors)


def answer(
    state: RoutingState,
    call: Call,
    avoid: Container[str] = NO_AVOID,
    unchecked: bool = False,
    now: float = 0.0,
    heard: Container[str] = NO_AVOID,
) -> Generator[Call, Reply, Reply]:
    """Answer a call addressed to this node. Only a ConfirmOwner may make a call of its own
    first (see `ownership.confirm`, which says what the other arguments are)."""
    if isinstance(call, ConfirmOwner):
        return (
            yield from ownership.confirm(
                state, call, avoid, unchecked=unchecked, now=now, heard=heard
            )
        )
    return handle(state, call, avoid)


def handle(state: RoutingState, call: Call, avoid: Container[str] = NO_AVOID) -> Reply:
    """Answer a call addressed to this node that needs no call of its own (every one but
    ConfirmOwner, which `answer` answers): what a peer's request does to our state."""
    match call:
        case FindStep(key=key):
            return state.step(key, avoid)
        case GetNeighbors():
            return state.neighbors()
        case Ping():
            return Pong(state.me)
        case Notify(candidate=candidate):
            state.rectify(candidate)
            return Ack()
        case LeaveNotice(leaving=leaving, predecessor=pred, successors=succs):
            state.on_leave_notice(leaving, pred, succs)
            return Ack()
    raise TypeError(f"not a call: {call!r}")


__all__ = [
    "JoinFailed",
    "MergeResult",
    "answer",
    "check_predecessor",
    "fix_fingers",
    "handle",
    "join",
    "leave",
    "merge",
    "reclaim",
    "stabilize",
]
