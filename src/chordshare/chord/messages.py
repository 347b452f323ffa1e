"""Values that cross between nodes: peer references, calls a procedure asks for, replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A node as others know it: its ring id and the address it advertises."""

    id: int
    address: str


# Calls: what a procedure asks its driver to send. `peer` is the node to call.


@dataclass(frozen=True, slots=True)
class FindStep:
    """Ask peer for one step of an iterative lookup of key."""

    peer: NodeRef
    key: int
    # The lookup has somewhere else to go if peer fails: a runtime need not wait long for
    # it. Not part of the message (left out of equality too).
    fallback: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class GetNeighbors:
    """Ask peer for its predecessor and successor list."""

    peer: NodeRef


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell peer that candidate believes it may be peer's predecessor."""

    peer: NodeRef
    candidate: NodeRef


@dataclass(frozen=True, slots=True)
class Ping:
    """Check that peer is alive and is who we think it is."""

    peer: NodeRef


@dataclass(frozen=True, slots=True)
class LeaveNotice:
    """Tell peer that `leaving` is going, with what peer needs to relink around it."""

    peer: NodeRef
    leaving: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]


Call = FindStep | GetNeighbors | Notify | Ping | LeaveNotice


# Replies.


@dataclass(frozen=True, slots=True)
class StepReply:
    """One lookup step. done: `nodes` is the answering node's successor list, and the first
    live entry owns the key. Otherwise `nodes` are the next hops to try, best first."""

    done: bool
    nodes: tuple[NodeRef, ...]


@dataclass(frozen=True, slots=True)
class Neighbors:
    node: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]


@dataclass(frozen=True, slots=True)
class Pong:
    node: NodeRef


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Unreachable:
    """What a procedure receives instead of a reply when the call failed."""

    peer: NodeRef
    reason: str


Reply = StepReply | Neighbors | Pong | Ack | Unreachable
