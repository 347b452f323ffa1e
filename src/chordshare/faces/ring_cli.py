"""The ring commands of the `chordshare` CLI: info, ring, lookup, and sim (the same protocol
core on a simulated ring)."""

# No `from __future__ import annotations`: see cli_app.

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.faces.cli_app import JsonOption, NodeOption, connected, fail, print_json
from chordshare.faces.clients import Clients
from chordshare.faces.loops import run
from chordshare.faces.render import finger_table, nodes_table, out, ring_table, short
from chordshare.ids import DEFAULT_BITS
from chordshare.transport.client import NodeInfo, node_json

if TYPE_CHECKING:
    from chordshare.chord.messages import NodeRef


def info(node: NodeOption, as_json: JsonOption = False) -> None:
    """A node's id, predecessor, successor list and finger table."""

    async def ask(clients: Clients) -> NodeInfo:
        return await clients.node.info()

    result = run(connected(node, ask))
    if as_json:
        print_json(result.to_json())
        return
    # escape: an IPv6 address is written [fe80::1]:7000, which is not markup
    out.print(f"[bold]node[/] {escape(short(result.node))}   ring: {result.bits}-bit ids")
    out.print(f"[bold]predecessor[/] {escape(short(result.predecessor))}")
    out.print(nodes_table(result.successors, "successor list"))
    out.print(finger_table(result))


def ring(node: NodeOption, as_json: JsonOption = False) -> None:
    """The ring, walked along successors from a node."""

    async def walk(clients: Clients) -> list["NodeRef"]:
        return await clients.node.ring()

    nodes = run(connected(node, walk))
    if as_json:
        print_json({"nodes": [node_json(n) for n in nodes]})
        return
    out.print(ring_table(nodes, node))


def lookup(
    key: Annotated[str | None, typer.Argument(help="A name; its key is its hash.")] = None,
    node: NodeOption = "",
    key_id: Annotated[int | None, typer.Option("--id", help="Look up this id directly.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Find the node that owns a key, and how many hops it took."""
    if not node:
        fail("--node is required")
    if (key is None) == (key_id is None):
        fail("give a KEY name or --id N (one of them)")

    async def go(clients: Clients) -> dict[str, Any]:
        client = clients.node
        if key_id is None:
            assert key is not None  # one of them, as checked above
            ident = client.space.hash(key)
        else:
            ident = client.space.check(key_id)
        return (await client.lookup(ident)).to_json(ident)

    result = run(connected(node, go))
    if as_json:
        print_json(result)
        return
    owner = result["owner"]
    out.print(
        f"key {result['key']} is owned by node {owner['id']} at {owner['address']} "
        f"({result['hops']} hop(s))",
        highlight=False,
    )


def sim(
    nodes: Annotated[int, typer.Option(help="Number of nodes.")] = 1000,
    lookups: Annotated[int, typer.Option(help="Number of lookups.")] = 10_000,
    successors: Annotated[int, typer.Option(help="Successor list length r.")] = DEFAULT_SUCCESSORS,
    fail_fraction: Annotated[
        float,
        typer.Option(
            "--fail",
            help="Fraction of nodes killed at once before lookups; the ring then repairs "
            "itself for a bounded number of rounds, and 'converged' says whether it healed.",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (runs are deterministic).")] = 0,
    bits: Annotated[int, typer.Option(help="Width m of ring ids.")] = DEFAULT_BITS,
    files: Annotated[
        int,
        typer.Option(
            help="Put this many files, then churn the ring (--changes) and check that no "
            "file is lost, none comes back removed, and each ends on its k holders."
        ),
    ] = 0,
    changes: Annotated[
        int, typer.Option(help="With --files: bursts of joins, leaves and crashes.")
    ] = 500,
    replicas: Annotated[int, typer.Option(help="With --files: copies of each file, k.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Simulate a ring on the in-memory network with the same protocol core (and, with
    --files, the same file-sharing core).

    A ring that does not heal after --fail is a result, not an error: it is reported with
    converged false and the problems left, and the command still exits 0."""
    from rich.table import Table

    if nodes < 1 or lookups < 0 or successors < 1 or not 0.0 <= fail_fraction < 1.0:
        fail("need --nodes >= 1, --lookups >= 0, --successors >= 1 and 0 <= --fail < 1")
    if files < 0 or changes < 0 or replicas < 1 or (files and nodes <= replicas):
        fail("need --files >= 0, --changes >= 0, --replicas >= 1 and more nodes than replicas")
    try:
        result: dict[str, Any] = _simulate(
            nodes, lookups, successors, fail_fraction, seed, bits, files, changes, replicas
        )
    except ValueError as err:
        fail(str(err))
    if as_json:
        print_json(result)
        return
    table = Table(title="simulation")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        shown = f"{v:.3f}" if isinstance(v, float) else str(v)
        table.add_row(k, escape(shown))
    out.print(table)


def _simulate(
    nodes: int,
    lookups: int,
    successors: int,
    fail_fraction: float,
    seed: int,
    bits: int,
    files: int,
    changes: int,
    replicas: int,
) -> dict[str, Any]:
    if files:
        from chordshare.sim.file_run import FilePlan, run_files

        plan = FilePlan(nodes, files, changes, replicas, seed, successors)
        return run_files(plan)
    from chordshare.sim.experiment import run_experiment

    return dict(run_experiment(nodes, lookups, successors, fail_fraction, seed, bits))
