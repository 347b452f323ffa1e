"""The iterative lookup: which live node owns a key, as a generator of calls.

Driven like every procedure of `procedures` (a driver sends each yielded call and sends the
reply back, `Unreachable` when it failed); join, stabilize, merge and fix_fingers build on
it, and a node's runtime runs it for a user's lookup.
"""

from __future__ import annotations

from collections.abc import Container, Generator
from dataclasses import dataclass

from chordshare.chord.messages import (
    Call,
    FindStep,
    GetNeighbors,
    Neighbors,
    NodeRef,
    Ping,
    Pong,
    Reply,
    StepReply,
    Unreachable,
)
from chordshare.chord.state import NO_AVOID, RoutingState
from chordshare.ids import between_right

# A lookup that has made this many calls is lost in a broken ring: stop rather than wander.
MAX_LOOKUP_CALLS = 1024


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
) -> Generator[Call, Reply, LookupResult]:
    """Iterative lookup of the node that owns key.

    Starts from this node's own state, or asks `start` first (a join, or a node that lost its
    successors). Every node that answers offers several next hops; they all go into one pool,
    and the one closest before the key is asked next, so a dead hop costs one failed call and
    the lookup goes on from the next best node it has heard of. A `done` answer names a
    successor list: its first entry that answers owns the key, and that answer is one hop
    (the "+1" of the Chord paper's hop count).

    `joining`: the caller is not on the ring yet, so an entry with its own address is a stale
    record of an earlier run of it and is skipped.
    """
    space = state.space
    if start is None:
        if not joining and state.owns(key):
            return LookupResult(state.me, 0, 0)
        reply: StepReply | None = state.step(key, avoid)
    else:
        reply = None
    hops = timeouts = 0
    alive: set[str] = set()
    last_failure = ""
    tried: set[str] = {state.me.address}
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

    while hops + timeouts < MAX_LOOKUP_CALLS:
        if reply is not None and reply.done:
            for at, candidate in enumerate(reply.nodes):
                after = reply.nodes[at + 1 :]
                if candidate.address == state.me.address:
                    if joining:
                        continue
                    return LookupResult(state.me, hops, timeouts)
                if candidate.address in avoid:
                    continue
                if candidate.address in alive:
                    return LookupResult(candidate, hops, timeouts, after)
                if candidate.address in tried:  # tried and failed: once is enough
                    continue
                answer = yield Ping(candidate)
                if isinstance(answer, Pong) and answer.node == candidate:
                    return LookupResult(candidate, hops + 1, timeouts, after)
                timeouts += 1
                tried.add(candidate.address)
                last_failure = _failure(candidate, answer)
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
                    hops += 1
                    successors = answer.successors
                else:
                    timeouts += 1
                    last_failure = _failure(nearest, answer)
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
            because = f" (last failure: {last_failure})" if last_failure else ""
            raise LookupFailed(f"no live node answers for key {key}{because}")
        nxt = best
        del pool[nxt.address]
        tried.add(nxt.address)
        fallback = bool(pool) or (nearest is not None and nearest.address not in listed)
        answer = yield FindStep(nxt, key, fallback)
        if isinstance(answer, StepReply):
            hops += 1
            alive.add(nxt.address)
            reply = answer
            if nearest is None or not behind(nxt):
                nearest = nxt
        else:
            timeouts += 1
            last_failure = _failure(nxt, answer)
            reply = None
    raise LookupFailed(f"lookup of key {key} gave up after {MAX_LOOKUP_CALLS} calls")


def _failure(peer: NodeRef, answer: Reply) -> str:
    if isinstance(answer, Unreachable):
        return f"{peer.address} {answer.reason}"
    return f"{peer.address} is not the node we expected"


__all__ = ["LookupFailed", "LookupResult", "find_successor"]
