"""Who owns a key, as the node asked answers it: its own (predecessor, self] check.

A lookup ends by asking the node it found whether it owns the key (`ConfirmOwner`), so an
answer never rests on the old view of a hop or of the asker: a hop that dropped a live node
from its successor list, or a successor that took over the keys of a node paused a moment
ago, is corrected by the one node that knows its own range best. The answer says where the
owner is when it is not this node: its predecessor, when the key lies before it, or the
nodes of its successor list, when after.

A node claims the keys of the nodes before it that the asker could not reach only after
failing to reach them too (evidence from two paths: a lossy link or a slow host fails one
caller as often as a dead node does); the first of them that answers it, it vouches for.
Past one found silent, the next alive is asked the question instead (its predecessor
calls it every stabilize period, so it tells lossy from dead), and its answer is relayed.
"""

from __future__ import annotations

from collections.abc import Container, Generator

from chordshare.chord.freshness import RETRY_AFTER
from chordshare.chord.messages import (
    Call,
    Claim,
    ConfirmOwner,
    NodeRef,
    OwnerAnswer,
    Ping,
    Pong,
    Reply,
    Unreachable,
)
from chordshare.chord.state import NO_AVOID, RoutingState
from chordshare.ids import between_right


def claim(state: RoutingState, key: int, unchecked: bool = False) -> Claim:
    """Whether this node owns key by its own view alone; UNSURE while that view is
    unchecked since a pause. What an `owner_only` file request is held to."""
    if unchecked:
        return Claim.UNSURE
    return Claim.OWNER if state.owns(key) else Claim.NOT_OWNER


def confirm(
    state: RoutingState,
    call: ConfirmOwner,
    suspects: Container[str] = NO_AVOID,
    failed: Container[str] = NO_AVOID,
    unchecked: bool = False,
    now: float = 0.0,
    heard: Container[str] = NO_AVOID,
    gone: Container[str] = NO_AVOID,
) -> Generator[Call, Reply, OwnerAnswer]:
    """Answer a ConfirmOwner. `suspects`: peers whose last call from us failed; `failed`:
    peers that failed this very request already (when the asker is this node);
    `unchecked`: our view is unchecked since a pause; `now`: the time, for a predecessor
    found silent; `heard`: peers that answered or called us a moment ago; `gone`: those of
    `failed` whose connection failed at once (nobody answers there)."""
    me = state.me
    plan = checks(state, call, unchecked)
    if isinstance(plan, OwnerAnswer):
        return plan
    after, pred = _after(state), state.predecessor
    # The asker reached none of them. The first of them that is alive is the owner: one
    # that answers us now, or that we cannot reach but that answered or called us a moment
    # ago. One that refuses the connection is gone; one we found silent before (absorbed)
    # is not asked again; one that fails us for the first time may be busy: the asker asks
    # again, and a second failure is enough (this node's own lookup step was the first).
    passed: list[NodeRef] = []  # those found silent on both paths
    for node in plan:
        if node.address in failed:  # this very request failed it: one path
            if node.address in gone:
                continue
            if node.address in heard:
                return OwnerAnswer(me, Claim.NOT_OWNER, (node,), vouched=True)
            # A lookup step's deadline is a few round trips: our check, with the whole
            # deadline, is the second path.
        failed_before = node.address in suspects or node.address in failed
        if passed:
            # Past a silent node, the next one alive decides, not us: it hears that node
            # every stabilize period (we may not), so it tells a lossy one from a dead one.
            # Left after a step's deadline if it is stopped (`fallback`: we go on without it).
            answer = yield ConfirmOwner(node, call.key, tuple(passed), fallback=True, brief=True)
            if isinstance(answer, OwnerAnswer) and answer.node == node:
                return _relayed(me, answer)
        else:
            answer = yield Ping(node, check=True)
            if isinstance(answer, Pong) and answer.node == node:
                return OwnerAnswer(me, Claim.NOT_OWNER, (node,), vouched=True)
        if isinstance(answer, Unreachable) and answer.refused:
            continue  # nothing listens there any more: gone
        if node.address in heard:  # it spoke a moment ago: slow or lossy, not gone
            return OwnerAnswer(me, Claim.NOT_OWNER, (node,), vouched=True)
        if not failed_before:
            return OwnerAnswer(me, Claim.UNSURE, retry_after=RETRY_AFTER)
        passed.append(node)
    if pred is not None and state.predecessor == pred:
        state.absorb(pred, now)  # silent on both paths: its keys are ours until it answers
    return OwnerAnswer(me, Claim.OWNER, () if call.brief else after)


def _relayed(me: NodeRef, answer: OwnerAnswer) -> OwnerAnswer:
    """Our answer from that of the node after the silent ones: where it says the owner is."""
    if answer.claim is Claim.OWNER or answer.claim is Claim.UNCHECKED:
        return OwnerAnswer(me, Claim.NOT_OWNER, (answer.node,), vouched=True)
    if answer.claim is Claim.NOT_OWNER and answer.nodes:
        return OwnerAnswer(me, Claim.NOT_OWNER, answer.nodes, vouched=answer.vouched)
    return OwnerAnswer(me, Claim.UNSURE, retry_after=answer.retry_after or RETRY_AFTER)


def checks(
    state: RoutingState, call: ConfirmOwner, unchecked: bool = False
) -> OwnerAnswer | list[NodeRef]:
    """`confirm`'s answer when it needs no check of another node (nearly every one: a
    runtime gives it at once, without a call to drive), or the nodes it may check, in the
    order it reads them (a runtime may ping them all at once; one past a silent node is
    asked the question instead): those of `_plan` but the ones it found silent before
    (absorbed), which it does not ask again."""
    plan = _plan(state, call, unchecked)
    if isinstance(plan, OwnerAnswer):
        return plan
    silent = {n.address for n in state.absorbed_nodes()}
    return [n for n in plan if n.address not in silent]


def _after(state: RoutingState) -> tuple[NodeRef, ...]:
    return tuple(n for n in state.successors if n != state.me)


def _plan(state: RoutingState, call: ConfirmOwner, unchecked: bool) -> OwnerAnswer | list[NodeRef]:
    """The answer that needs no check, or the nodes between the key and us the asker could
    not reach, in order from the key: the owner is the first of them alive."""
    me, key = state.me, call.key
    if unchecked:
        return OwnerAnswer(me, Claim.UNSURE, retry_after=RETRY_AFTER)
    after = _after(state)
    if state.owns(key):
        return OwnerAnswer(me, Claim.OWNER, () if call.brief else after)
    pred = state.predecessor
    tried = {n.address for n in call.unreachable}
    listed: tuple[NodeRef, ...] = ()
    if after and between_right(me.id, key, after[-1].id):
        first = next(i for i, s in enumerate(after) if between_right(me.id, key, s.id))
        ahead = after[first:]
        if pred is None or pred not in ahead:
            untried = tuple(n for n in ahead if n.address not in tried)
            if untried:
                return OwnerAnswer(me, Claim.NOT_OWNER, untried)
        else:  # a small ring: the list wraps round to our predecessor, the key is behind us
            listed = ahead[: ahead.index(pred) + 1]
    # The owner is at or after the key and before us: our predecessor, a node of our list
    # before it, or a node the asker came past (it lists them in order from the key).
    size = state.space.size
    behind = [n for n in call.unreachable if (n.id - key) % size < (me.id - key) % size]
    for node in (*listed, pred):
        if node is not None and node not in behind:
            behind.append(node)
    behind.sort(key=lambda n: (n.id - key) % size)
    untried = tuple(n for n in behind if n.address not in tried)
    if untried:
        return OwnerAnswer(me, Claim.NOT_OWNER, untried)
    return behind


__all__ = ["checks", "claim", "confirm"]
