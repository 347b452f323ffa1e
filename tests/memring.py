"""Chord nodes on the in-memory network, for the runtime tests that need many of them fast:
a 16-bit ring, maintenance every 50 ms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from waiting import wait_until

from chordshare.chord.invariants import convergence_problems
from chordshare.chord.membership import DEFAULT_CAP
from chordshare.chord.messages import NodeRef
from chordshare.ids import IdSpace
from chordshare.node.runtime import ChordNode, Timing
from chordshare.transport.memory import MemoryNetwork, MemoryTransport

FAST = Timing(stabilize=0.05, check_predecessor=0.1, fix_fingers=0.2, join_deadline=1.0)
SPACE = IdSpace(16)


async def start_memory_node(
    network: MemoryNetwork,
    address: str,
    join: ChordNode | None = None,
    hint_cap: int = DEFAULT_CAP,
) -> ChordNode:
    """A node with the id SHA-1 gives `address`, on the network, on a new ring or joined
    through `join`. Its transport knows its own address, so partitions can cut it off."""
    node = ChordNode(
        NodeRef(SPACE.hash(address), address),
        SPACE,
        MemoryTransport(network, address=address),
        successors=4,
        timing=FAST,
        hint_cap=hint_cap,
    )
    network.attach(address, node)
    if join is None:
        await node.create()
    else:
        await node.join(join.me.address)
    return node


def converged(nodes: list[ChordNode], check_fingers: bool = True) -> bool:
    states = {n.me.address: n.state for n in nodes}
    return not convergence_problems(states, set(states), check_fingers=check_fingers)


@asynccontextmanager
async def memory_ring(
    count: int, prefix: str
) -> AsyncIterator[tuple[MemoryNetwork, list[ChordNode]]]:
    """`count` nodes joined into one converged ring; their maintenance stops at the end."""
    network = MemoryNetwork()
    nodes: list[ChordNode] = []
    for i in range(count):
        address = f"{prefix}-{i}:1"
        nodes.append(await start_memory_node(network, address, nodes[0] if nodes else None))
    await wait_until(lambda: converged(nodes), 20, "the in-memory ring to converge")
    try:
        yield network, nodes
    finally:
        for node in nodes:
            await node.stop_maintenance()
