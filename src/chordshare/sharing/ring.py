"""The ring as file sharing sees it: who owns a key, who follows a node, and who holds
which keys as one round of work learns it (`Placement`).

`NodeRing` asks the node runtime this process runs; `RemoteRing` asks a node over gRPC on
behalf of a client (the CLI), which is not itself on the ring.
"""

from __future__ import annotations

import time
from typing import Protocol

from chordshare.chord.messages import GetNeighbors, Neighbors, NodeRef
from chordshare.chord.state import RoutingState
from chordshare.files.repair import KeyHolders, RangeMap, key_holders
from chordshare.ids import IdSpace
from chordshare.node.runtime import ChordNode
from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient


class Ring(Protocol):
    space: IdSpace

    async def owner(self, key: int) -> NodeRef: ...

    async def successors(self, node: NodeRef) -> list[NodeRef]: ...

    async def neighbors(self, node: NodeRef) -> Neighbors: ...


async def _neighbors_over(transport: object, node: NodeRef) -> Neighbors:
    reply = await transport.call(GetNeighbors(node))  # type: ignore[attr-defined]
    if not isinstance(reply, Neighbors):
        raise PeerError(node.address, "answered GetNeighbors with something else")
    return reply


async def _successors_over(transport: object, node: NodeRef) -> list[NodeRef]:
    return list((await _neighbors_over(transport, node)).successors)


class NodeRing:
    def __init__(self, node: ChordNode) -> None:
        self.node = node
        self.space = node.space

    async def owner(self, key: int) -> NodeRef:
        return (await self.node.lookup(key)).owner

    async def successors(self, node: NodeRef) -> list[NodeRef]:
        return list((await self.neighbors(node)).successors)

    async def neighbors(self, node: NodeRef) -> Neighbors:
        state = self.node.state
        if node.address == self.node.me.address:
            return Neighbors(state.me, state.predecessor, tuple(state.successors))
        return await _neighbors_over(self.node.transport, node)


class RemoteRing:
    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.space = client.space

    async def owner(self, key: int) -> NodeRef:
        return (await self.client.lookup(key)).owner

    async def successors(self, node: NodeRef) -> list[NodeRef]:
        return await _successors_over(self.client.transport, node)

    async def neighbors(self, node: NodeRef) -> Neighbors:
        return await _neighbors_over(self.client.transport, node)


PLACEMENT_TTL = 2.0  # seconds the rounds after puts trust what a lookup taught them


class Placement:
    """Who holds which keys, learned during one round of work: a lookup names a key's
    owner, its neighbours give the range it owns and its successors (`RangeMap`)."""

    def __init__(self, state: RoutingState, ring: Ring, replicas: int) -> None:
        self.state = state
        self.ring = ring
        self.replicas = replicas
        self.ranges = RangeMap()

    async def holders_of(self, key: int) -> KeyHolders:
        """The key's owner and its k holders (owner first): this node's own answer when
        it owns the key, else a lookup's."""
        state = self.state
        if state.owns(key):
            successors = [node.address for node in state.successors]
            return key_holders(state.me.address, successors, self.replicas)
        known = self.ranges.known(key)
        if known is not None:
            return known
        owner = await self.ring.owner(key)
        around = await self.ring.neighbors(owner)
        successors = [node.address for node in around.successors]
        holders = key_holders(owner.address, successors, self.replicas)
        pred = around.predecessor
        self.ranges.learn(pred.id if pred is not None else None, owner.id, holders)
        return holders


class Placements:
    """A full round learns placement afresh; the small rounds that follow puts reuse what
    was learned for PLACEMENT_TTL seconds (while this node's own neighbours stay the
    same), instead of looking the same word keys up for every file."""

    def __init__(self, state: RoutingState, ring: Ring, replicas: int) -> None:
        self.state = state
        self.ring = ring
        self.replicas = replicas
        self._cached: tuple[float, object, Placement] | None = None

    def get(self, fresh: bool) -> Placement:
        now = time.monotonic()
        view = (self.state.predecessor, tuple(self.state.successors))
        cached = self._cached
        if fresh or cached is None or now - cached[0] > PLACEMENT_TTL or cached[1] != view:
            cached = self._cached = (now, view, self.new())
        return cached[2]

    def new(self) -> Placement:
        return Placement(self.state, self.ring, self.replicas)
