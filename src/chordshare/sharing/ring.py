"""The ring as file sharing sees it: who owns a key, and who follows a node.

`NodeRing` asks the node runtime this process runs; `RemoteRing` asks a node over gRPC on
behalf of a client (the CLI), which is not itself on the ring.
"""

from __future__ import annotations

from typing import Protocol

from chordshare.chord.messages import GetNeighbors, Neighbors, NodeRef
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
