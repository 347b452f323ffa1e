"""Chord nodes on the in-memory network, for the runtime tests that need many of them fast:
a 16-bit ring, maintenance every 50 ms."""

from __future__ import annotations

from chordshare.chord.messages import NodeRef
from chordshare.ids import IdSpace
from chordshare.node.runtime import ChordNode, Timing
from chordshare.transport.memory import MemoryNetwork, MemoryTransport

FAST = Timing(stabilize=0.05, check_predecessor=0.1, fix_fingers=0.2, join_deadline=1.0)
SPACE = IdSpace(16)


async def start_memory_node(
    network: MemoryNetwork, address: str, join: ChordNode | None = None
) -> ChordNode:
    """A node with the id SHA-1 gives `address`, on the network, on a new ring or joined
    through `join`. Its transport knows its own address, so partitions can cut it off."""
    node = ChordNode(
        NodeRef(SPACE.hash(address), address),
        SPACE,
        MemoryTransport(network, address=address),
        successors=4,
        timing=FAST,
    )
    network.attach(address, node)
    if join is None:
        await node.create()
    else:
        await node.join(join.me.address)
    return node
