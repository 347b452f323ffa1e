"""The iterative lookup: which live node owns a key, as a generator of calls.

Driven like every procedure of `procedures` (a driver sends each yielded call and sends the
reply back, `Unreachable` when it failed); join, stabilize, merge and fix_fingers build on
it, and a node's runtime runs it for a user's lookup.
"""

from __future__ import annotations

from collections.abc import Container, Generator
from dataclasses import dataclass, field

from chordshare.chord import ownership
from chordshare.chord.messages import (
    Call,
    Claim,
    ConfirmOwner,
    FindStep,
    GetNeighbors,
    Neighbors,
    NodeRef,
    OwnerAnswer,
    Pause,
    Reply,
    StepReply,
    Unreachable,
)
from chordshare.chord.state import NO_AVOID, RoutingState
from chordshare.ids import between_right

# A lookup that has made this many calls is lost in a broken ring: stop rather than wander.
MAX_LOOKUP_CALLS = 1024
# Times a lookup asks again a node that is checking its view after a pause (each after the
# wait it names) before it gives up on the key for now.
MAX_PAUSES = 8
# Owner confirmations a lookup spends on what the membership hints say before it goes the
# long way: the hinted node, and the candidate it names instead.
HINTED_CALLS = 2


class LookupFailed(Exception):
    """No live node could be found that answers for the key."""


@dataclass(frozen=True, slots=True)
class LookupResult:
    owner: NodeRef
    hops: int  # remote nodes that answered
    timeouts: int  # calls that failed on the way
    # The nodes after the owner, clockwise, as the node that answered listed them.
    after: tuple[NodeRef, ...] = ()


def find_successor(
    state: RoutingState,
    key: int,
    avoid: Container[str] = NO_AVOID,
    start: NodeRef | None = None,
    joining: bool = False,
    heard: Container[str] = NO_AVOID,
    hint: NodeRef | None = None,
    brief: bool = False,
) -> Generator[Call, Reply, LookupResult]:
    """Iterative lookup of the node that owns key.

    Starts from this node's own state, or asks `start` first (a join, or a node that lost its
    successors). Every node that answers offers several next hops; they all go into one pool,
    and the one closest before the key is asked next, so a dead hop costs one failed call and
    the lookup goes on from the next best node it has heard of. A `done` answer names a
    successor list: the owner is among its entries, in order, and each is asked in turn
    whether it owns the key (`ConfirmOwner`); its own range decides, and that answer is one
    hop (the "+1" of the Chord paper's hop count).

    `joining`: the caller is not on the ring yet, so an entry with its own address is a stale
    record of an earlier run of it and is skipped; and it waits for every call's verdict
    (no `fallback`): a node that cannot join has nothing better to do, and a ring that is
    all starting answers slowly. `heard`: peers that answered or called
    us a moment ago, for when this node is itself a candidate (`ownership.confirm`).
    `hint`: the node the membership hints name as owner (`chord.membership`), asked first
    (`_ask_hint`); when it is suspected, or it and the node it names do not settle it, the
    lookup goes on as above. A node the hints list after it is not told of its silence:
    the table may miss a node that joined in between, whose keys that node would claim.
    `brief`: the result's `after` may be left empty (the owner need not send it).
    """
    space = state.space
    tally = _Tally()
    if start is None:
        if not joining and state.owns(key):
            return LookupResult(state.me, 0, 0)
        if hint is not None and not joining and hint.address not in avoid:
            # With another node to go to, a hint that does not answer is not waited for.
            others = any(n != hint and n != state.me for n in state.successors)
            hinted = yield from _ask_hint(state, key, hint, avoid, tally, others, brief)
            if hinted is not None:
                return hinted
        reply: StepReply | None = state.step(key, avoid)
    else:
        reply = None
    tried: set[str] = {state.me.address, *tally.failed}
    pool: dict[str, NodeRef] = {}
    if start is not None:
        pool[start.address] = start
    # The live node nearest before the key that we heard from. A node answers `done` only
    # up to its first successor, and offers no hop past the key; so when that successor died
    # unnoticed, every hop it offers is dead and only its successor list leads on (what a
    # recursive Chord node does when its successor times out). It is read once, when no hop
    # is left that is nearer the key: going back round the ring would only meet the same
    # dead nodes again.
    nearest: NodeRef | None = state.me if start is None else None
    listed: set[str] = set()

    def behind(node: NodeRef) -> bool:
        return (
            nearest is not None and (key - node.id) % space.size >= (key - nearest.id) % space.size
        )

    while tally.calls < MAX_LOOKUP_CALLS:
        if reply is not None and reply.done:
            way_on = nearest is not None and nearest.address not in listed
            found = yield from _confirm(
                state, key, reply.nodes, avoid, joining, tally, heard, way_on, brief
            )
            if found is not None:
                return found
            tried |= tally.failed
        elif reply is not None:
            for node in reply.nodes:
                if node.address not in tried and node.address not in avoid:
                    pool[node.address] = node
        best = min(pool.values(), key=lambda n: (key - n.id) % space.size, default=None)
        stuck = best is None or behind(best)
        if stuck and nearest is not None and nearest.address not in listed:
            listed.add(nearest.address)
            if nearest == state.me:
                successors: tuple[NodeRef, ...] = tuple(state.successors)
            else:
                answer = yield GetNeighbors(nearest)
                if isinstance(answer, Neighbors) and answer.node == nearest:
                    tally.hops += 1
                    successors = answer.successors
                else:
                    tally.fail(nearest, answer)
                    successors = ()
            # The list runs clockwise from nearest: entries before the key are hops not yet
            # tried, the rest answer for the key as a done step would.
            past = [n for n in successors if between_right(nearest.id, key, n.id)]
            for node in successors:
                if node not in past and node.address not in tried and node.address not in avoid:
                    pool[node.address] = node
            reply = StepReply(done=True, nodes=tuple(past)) if past else None
            continue
        if best is None:
            because = f" (last failure: {tally.last_failure})" if tally.last_failure else ""
            raise LookupFailed(f"no live node answers for key {key}{because}")
        nxt = best
        del pool[nxt.address]
        tried.add(nxt.address)
        way_on = bool(pool) or (nearest is not None and nearest.address not in listed)
        answer = yield FindStep(nxt, key, fallback=way_on and not joining)
        if isinstance(answer, StepReply):
            tally.hops += 1
            reply = answer
            if nearest is None or not behind(nxt):
                nearest = nxt
        else:
            tally.fail(nxt, answer)
            reply = None
    raise LookupFailed(f"lookup of key {key} gave up after {MAX_LOOKUP_CALLS} calls")


@dataclass
class _Tally:
    """What a lookup's calls came to so far."""

    hops: int = 0  # remote nodes that answered
    timeouts: int = 0  # calls that failed
    last_failure: str = ""
    failed: set[str] = field(default_factory=set)  # addresses
    gone: set[str] = field(default_factory=set)  # those whose connection failed at once

    @property
    def calls(self) -> int:
        return self.hops + self.timeouts

    def fail(self, peer: NodeRef, answer: Reply) -> None:
        self.timeouts += 1
        self.failed.add(peer.address)
        if isinstance(answer, Unreachable) and answer.refused:
            self.gone.add(peer.address)
        self.last_failure = _failure(peer, answer)

    def result(self, owner: NodeRef, after: tuple[NodeRef, ...]) -> LookupResult:
        return LookupResult(owner, self.hops, self.timeouts, after)


def _ask_hint(
    state: RoutingState,
    key: int,
    hint: NodeRef,
    avoid: Container[str],
    tally: _Tally,
    fallback: bool,
    brief: bool,
) -> Generator[Call, Reply, LookupResult | None]:
    """Ask the hinted node whether it owns key, and if it names another candidate (a node
    that joined before it, unknown to the hints yet), that one. A node checking its view
    after a pause is asked again once it is done, as at the end of the long way. None:
    the lookup goes the long way; a hint is never trusted further than the node's own
    answer."""
    node = hint
    calls = pauses = 0
    while calls < HINTED_CALLS:
        answer = yield ConfirmOwner(node, key, fallback=fallback, brief=brief)
        if not (isinstance(answer, OwnerAnswer) and answer.node == node):
            tally.fail(node, answer)
            return None
        tally.hops += 1
        if answer.claim is Claim.OWNER:
            return tally.result(node, answer.nodes)
        if answer.claim is Claim.UNSURE and pauses < MAX_PAUSES:
            pauses += 1
            yield Pause(node, answer.retry_after)
            continue
        if answer.claim is not Claim.NOT_OWNER or not answer.nodes:
            return None  # an older node, or one still unsure: the long way decides
        node = answer.nodes[0]
        calls += 1
        if node == state.me or node.address in avoid:
            return None
    return None


def _confirm(
    state: RoutingState,
    key: int,
    candidates: tuple[NodeRef, ...],
    avoid: Container[str],
    joining: bool,
    tally: _Tally,
    heard: Container[str],
    way_on: bool,
    brief: bool = False,
) -> Generator[Call, Reply, LookupResult | None]:
    """Ask the owner candidates of a done step, in order, until one owns the key. A node
    that does not own it says where the owner is: its predecessor (asked next, then the
    node again if the predecessor cannot be reached, with that said), or the nodes of its
    successor list; or vouches for one we could not reach, taken as the owner (asked
    itself first if we only suspected it). None when every candidate failed."""
    queue = list(candidates)
    unreachable: list[NodeRef] = []  # candidates before the one asked that we could not reach
    told: dict[str, int] = {}  # what each node was told: how many of those
    # Suspects we never called that a candidate vouched for, and that candidate.
    vouched_by: dict[str, NodeRef] = {}
    pauses = 0
    size = state.space.size
    while queue and tally.calls < MAX_LOOKUP_CALLS:
        node = queue.pop(0)
        mine = node.address == state.me.address
        if mine and joining:  # an earlier run of ours, gone
            unreachable.append(node)
            continue
        skipped = node.address in avoid and node.address not in vouched_by
        if not mine and (skipped or node.address in tally.failed):
            if node not in unreachable:
                unreachable.append(node)
            continue
        if told.get(node.address, -1) >= len(unreachable):
            continue  # it answered already, and nothing new can change that answer
        told[node.address] = len(unreachable)
        # A candidate need not be waited for while the lookup has another way on: the next
        # candidate, or the list of the node nearest before the key, whose nodes after it
        # check it themselves.
        fallback = (bool(queue) or way_on) and not joining
        ask = ConfirmOwner(node, key, tuple(unreachable), fallback=fallback, brief=brief)
        if mine:  # our own range decides, as any node's does
            # Asker and answerer are one path here: what failed once is checked once more.
            confirming = ownership.confirm(
                state, ask, avoid, tally.failed, heard=heard, gone=tally.gone
            )
            answer: Reply = yield from _counted(confirming, tally)
        else:
            answer = yield ask
            if not (isinstance(answer, OwnerAnswer) and answer.node == node):
                tally.fail(node, answer)
                if node.address in vouched_by:  # it fails us too: the vouch stands
                    return tally.result(node, (vouched_by[node.address],))
                unreachable.append(node)
                continue
            tally.hops += 1
        assert isinstance(answer, OwnerAnswer)
        if answer.claim is Claim.OWNER:
            return tally.result(node, answer.nodes)
        if answer.claim is Claim.UNCHECKED:  # an older node: it answered, as a ping would
            return tally.result(node, tuple(queue))
        if answer.claim is Claim.UNSURE:
            if pauses == MAX_PAUSES:
                raise LookupFailed(f"{node.address} is still checking its view after a pause")
            pauses += 1
            yield Pause(node, answer.retry_after)
            del told[node.address]
            queue.insert(0, node)
            continue
        if joining and answer.nodes and answer.nodes[0].address == state.me.address:
            return tally.result(node, answer.nodes[1:])  # it names our earlier run
        if answer.vouched and answer.nodes:
            vouched = answer.nodes[0]
            if vouched.address in tally.failed or vouched.address in vouched_by:
                return tally.result(vouched, (node,))
            # Only suspected, never called: it is asked itself, and its own range decides.
            # The node that vouched for it saw only that it runs, and our list may miss a
            # node between the key and it (one from before a pause of ours).
            vouched_by[vouched.address] = node
            unreachable = [n for n in unreachable if n != vouched]
            queue = [vouched, node, *queue]
            continue
        ahead = [n for n in answer.nodes if n.address != node.address]
        # A predecessor lies between the key and the node: the node is asked again if that
        # one cannot be reached.
        back = [n for n in ahead if (n.id - key) % size < (node.id - key) % size]
        queue = [*ahead, node, *queue] if back else [*ahead, *queue]
    return None


def _counted(
    procedure: Generator[Call, Reply, OwnerAnswer], tally: _Tally
) -> Generator[Call, Reply, OwnerAnswer]:
    """Run our own answer to a ConfirmOwner, counting the calls it makes as the lookup's."""
    try:
        call = next(procedure)
        while True:
            reply = yield call
            if isinstance(reply, Unreachable):
                tally.fail(call.peer, reply)
            else:
                tally.hops += 1
            call = procedure.send(reply)
    except StopIteration as stop:
        answer: OwnerAnswer = stop.value
        return answer


def _failure(peer: NodeRef, answer: Reply) -> str:
    if isinstance(answer, Unreachable):
        return f"{peer.address} {answer.reason}"
    return f"{peer.address} is not the node we expected"


__all__ = ["LookupFailed", "LookupResult", "find_successor"]
