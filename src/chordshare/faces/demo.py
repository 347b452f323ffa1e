"""`chordshare demo`: a local network of several peers in one process, with a few sample
files put into it, printed once the ring settles. Data lives in a temporary directory that
is removed when the demo stops."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chordshare.chord.invariants import convergence_problems
from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import ApiAuth, load_or_make_token
from chordshare.faces.loops import first_of
from chordshare.faces.serve import dashboard_url
from chordshare.node.server import NodeSettings
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer, SharingSettings
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

SAMPLE_FILES = {
    "welcome.txt": "Welcome to chordshare: files on a self-healing Chord ring.\n",
    "q3-report.csv": "quarter,files,peers\nq3,1200,48\n",
    "chord-paper-notes.md": "# Chord\nA key lives on successor(key); O(log N) hops.\n",
}

TEACHING_BITS = 5
TEACHING_IDS = (20, 28, 5, 1)  # the seed project's ring; 20 starts it, as there


async def start_demo(
    count: int, bits: int, ids: list[int] | None, host: str, base_port: int, data: Path
) -> list[SharingPeer]:
    """Start `count` peers on loopback: the first creates the ring, the rest join it."""
    peers: list[SharingPeer] = []
    try:
        for i in range(count):
            port = base_port + i if base_port else 0
            first = peers[0].server.node if peers else None
            settings = NodeSettings(
                bind=f"{host}:{port}",
                join=first.me.address if first else None,
                node_id=ids[i] if ids else None,
                bits=bits,
            )
            peer = SharingPeer(settings, SharingSettings(data_dir=data / f"node-{i}"))
            await peer.start()
            peers.append(peer)
    except BaseException:
        await stop_demo(peers)
        raise
    return peers


async def wait_converged(peers: list[SharingPeer], deadline: float) -> bool:
    """Wait until every pointer of every node is what the sorted ids say."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        states = {p.server.node.me.address: p.server.node.state for p in peers if p.server.node}
        if not convergence_problems(states, set(states)):
            return True
        await asyncio.sleep(0.1)
    return False


async def put_samples(peer: SharingPeer, folder: Path) -> list[str]:
    """Put the sample files into the network through one peer."""
    assert peer.server.node is not None
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    files = FileClient(NodeRing(peer.server.node), GrpcFilePeers(), signer=peer.signer)
    try:
        for name, text in SAMPLE_FILES.items():
            await asyncio.to_thread((folder / name).write_text, text)
            await files.put(folder / name)
    finally:
        await files.peers.close()
    return list(SAMPLE_FILES)


async def stop_demo(peers: list[SharingPeer]) -> None:
    for peer in reversed(peers):
        await peer.stop(graceful=True)


def command_name(argv0: str | None = None) -> str:
    """How to run this CLI from a fresh shell: `chordshare` when PATH finds this very
    command (or it runs some other way, as `python -m`), else the path it was run by
    (`.venv/bin/chordshare` from `make demo` in a clone)."""
    me = Path(argv0 if argv0 is not None else sys.argv[0])
    if me.name != "chordshare":
        return "chordshare"
    found = shutil.which("chordshare")
    if found is not None and Path(found).resolve() == me.resolve():
        return "chordshare"
    return str(me)


def short_id(ident: int) -> str:
    """A ring id cut to what tells nodes apart on a screen (a 160-bit id has 49 digits)."""
    text = str(ident)
    return text if len(text) <= 10 else text[:9] + "…"


def ring_table(peers: list[SharingPeer]) -> Table:
    """The ring, one row a node, narrow enough for an 80-column terminal."""
    nodes = sorted((p.server.node for p in peers if p.server.node), key=lambda n: n.me.id)
    table = Table(title=f"chordshare demo: {len(nodes)} nodes on one ring")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("predecessor", justify="right", no_wrap=True)
    table.add_column("successor", justify="right", no_wrap=True)
    table.add_column("fingers", justify="right")
    for n in nodes:
        st = n.state
        table.add_row(
            short_id(n.me.id),
            n.me.address,
            "-" if st.predecessor is None else short_id(st.predecessor.id),
            short_id(st.successor.id),
            str(len(st.distinct_fingers())),
        )
    return table


async def run_demo(count: int, teaching: bool, base_port: int, console: Console) -> None:
    bits = TEACHING_BITS if teaching else 160
    ids = list(TEACHING_IDS) if teaching else None
    if teaching:
        count = len(TEACHING_IDS)
    with tempfile.TemporaryDirectory(prefix="chordshare-demo-") as scratch:
        data = Path(scratch)
        peers = await start_demo(count, bits, ids, "127.0.0.1", base_port, data)
        stop = asyncio.Event()
        webs: list[ApiServer] = []
        urls: list[str] = []
        try:
            settled = await wait_converged(peers, deadline=30)
            console.print(ring_table(peers))
            if not settled:
                console.print("[yellow]the ring has not settled yet; it keeps stabilizing[/]")
            names = await put_samples(peers[0], data / "samples")
            first = peers[0].server.node
            assert first is not None
            for peer in peers:
                # Each node has its own token, as a node started alone would.
                auth = ApiAuth(load_or_make_token(peer.settings.data_dir))
                web = ApiServer(peer, "127.0.0.1:0", stop.set, auth)
                url = await web.start()
                webs.append(web)
                urls.append(dashboard_url(url, auth))
            at = f"--node {first.me.address}"
            cli = command_name()
            console.print(f"Sample files in the network: {', '.join(names)}", highlight=False)
            console.print("[bold]Dashboard[/] (the link carries its API token):", highlight=False)
            console.print(f"  {urls[0]}", highlight=False)
            docs = urls[0].partition("/#")[0] + "/docs"
            console.print(f"REST API documented at {docs}", highlight=False)
            console.print("Try, in another terminal:", highlight=False)
            for command in (
                f"{cli} ring {at}",
                f"{cli} ls --all {at}",
                f"{cli} search report {at}",
                f"{cli} get welcome.txt {at}",
                f"{cli} put FILE {at}",
            ):
                console.print(f"  {command}", highlight=False)
            console.print("The other nodes' dashboards:", highlight=False)
            for url in urls[1:]:
                console.print(f"  {url}", highlight=False)
            console.print("Ctrl-C stops every node (each leaves the ring gracefully).")
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            # One node asked to leave (`chordshare leave`) ends the demo, as Ctrl-C does.
            await first_of(stop.wait(), *(peer.server.ended.wait() for peer in peers))
        finally:
            for web in webs:
                await web.stop()
            await stop_demo(peers)
            console.print("demo stopped")
