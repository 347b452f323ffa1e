"""Values that cross between nodes: peer references, calls a procedure asks for, replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


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
    """Check that peer is alive and is who we think it is. `check`: the check of a node
    another could not reach, for an answer someone waits on: it waits the node's round
    trips, not the deadline its missed calls backed off to, and is sent once."""

    peer: NodeRef
    check: bool = False


@dataclass(frozen=True, slots=True)
class LeaveNotice:
    """Tell peer that `leaving` is going, with what peer needs to relink around it."""

    peer: NodeRef
    leaving: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]


@dataclass(frozen=True, slots=True)
class ConfirmOwner:
    """Ask peer whether it owns key: its own (predecessor, self] check decides, so a lookup
    that ends here never names an owner from the asker's or a hop's old view.

    `unreachable`: nodes between the key and peer, in ring order, that the asker could not
    reach. Peer claims their keys only once it cannot reach them either: one path that fails
    is a lossy link or a slow host as often as a dead node."""

    peer: NodeRef
    key: int
    unreachable: tuple[NodeRef, ...] = ()
    fallback: bool = field(default=False, compare=False)  # as FindStep's
    brief: bool = False  # an owner need not list the nodes after it


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait before asking peer again (it said when); no message is sent."""

    peer: NodeRef
    seconds: float


Call = FindStep | GetNeighbors | Notify | Ping | LeaveNotice | ConfirmOwner | Pause


# Replies.


@dataclass(frozen=True, slots=True)
class StepReply:
    """One lookup step. done: `nodes` is the answering node's successor list from the key
    on, the owner's candidates in order (each confirms or says where the owner is).
    Otherwise `nodes` are the next hops to try, best first."""

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
    refused: bool = False  # its connection failed at once: gone, not slow


class Claim(Enum):
    """A node's answer to ConfirmOwner."""

    OWNER = "owner"
    NOT_OWNER = "not owner"  # `nodes` are where the owner is, to confirm next
    UNSURE = "unsure"  # its view may be old (it was paused): ask again after retry_after
    UNCHECKED = "unchecked"  # an older node, which answers but does not check ownership


@dataclass(frozen=True, slots=True)
class OwnerAnswer:
    node: NodeRef
    claim: Claim
    # OWNER: the nodes after it, clockwise; NOT_OWNER: the owner candidates, in order.
    nodes: tuple[NodeRef, ...] = ()
    # NOT_OWNER: nodes[0] answered this node just now, though the asker could not reach it.
    vouched: bool = False
    retry_after: float = 0.0  # UNSURE: seconds


Reply = StepReply | Neighbors | Pong | Ack | Unreachable | OwnerAnswer
