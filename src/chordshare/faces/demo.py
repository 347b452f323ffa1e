"""`chordshare demo`: a local ring of several nodes in one process, printed once it settles."""

from __future__ import annotations

import asyncio
import signal
import time

from rich.console import Console
from rich.table import Table

from chordshare.chord.invariants import convergence_problems
from chordshare.node.server import NodeServer, NodeSettings

TEACHING_BITS = 5
TEACHING_IDS = (20, 28, 5, 1)  # the seed project's ring; 20 starts it, as there


async def start_demo(
    count: int, bits: int, ids: list[int] | None, host: str, base_port: int
) -> list[NodeServer]:
    """Start `count` nodes on loopback: the first creates the ring, the rest join it."""
    servers: list[NodeServer] = []
    try:
        for i in range(count):
            port = base_port + i if base_port else 0
            settings = NodeSettings(
                bind=f"{host}:{port}",
                join=servers[0].node.me.address if servers and servers[0].node else None,
                node_id=ids[i] if ids else None,
                bits=bits,
            )
            server = NodeServer(settings)
            await server.start()
            servers.append(server)
    except BaseException:
        await stop_demo(servers)
        raise
    return servers


async def wait_converged(servers: list[NodeServer], deadline: float) -> bool:
    """Wait until every pointer of every node is what the sorted ids say."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        states = {s.node.me.address: s.node.state for s in servers if s.node}
        if not convergence_problems(states, set(states)):
            return True
        await asyncio.sleep(0.1)
    return False


async def stop_demo(servers: list[NodeServer]) -> None:
    for server in reversed(servers):
        await server.stop(graceful=True)


def ring_table(servers: list[NodeServer]) -> Table:
    nodes = sorted((s.node for s in servers if s.node), key=lambda n: n.me.id)
    table = Table(title=f"chordshare demo: {len(nodes)} nodes on one ring")
    table.add_column("id", justify="right")
    table.add_column("address")
    table.add_column("predecessor", justify="right")
    table.add_column("successor", justify="right")
    table.add_column("distinct fingers")
    for n in nodes:
        st = n.state
        table.add_row(
            str(n.me.id),
            n.me.address,
            "-" if st.predecessor is None else str(st.predecessor.id),
            str(st.successor.id),
            ", ".join(str(f.id) for f in st.distinct_fingers()),
        )
    return table


async def run_demo(count: int, teaching: bool, base_port: int, console: Console) -> None:
    bits = TEACHING_BITS if teaching else 160
    ids = list(TEACHING_IDS) if teaching else None
    if teaching:
        count = len(TEACHING_IDS)
    servers = await start_demo(count, bits, ids, "127.0.0.1", base_port)
    try:
        settled = await wait_converged(servers, deadline=30)
        console.print(ring_table(servers))
        if not settled:
            console.print("[yellow]the ring has not settled yet; it keeps stabilizing[/]")
        first = servers[0].node
        assert first is not None
        console.print(
            f"Try: chordshare ring --node {first.me.address}   |   "
            f"chordshare info --node {first.me.address}   |   "
            f"chordshare lookup hello.txt --node {first.me.address}"
        )
        console.print("Ctrl-C stops every node (each leaves the ring gracefully).")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await stop_demo(servers)
        console.print("demo stopped")
