"""The `chordshare` command line: run a node, inspect the ring, look keys up, simulate.

Errors reach the user as one line on stderr and a non-zero exit (2 for bad input or an
unreachable peer), never as a traceback. Every read command takes --json for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chordshare.allocator import tune_malloc
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.faces.logs import setup_logging
from chordshare.faces.node_address import answers_http, node_address, not_a_peer_port
from chordshare.ids import DEFAULT_BITS
from chordshare.node.runtime import JoinError
from chordshare.node.server import StartError
from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient, NodeInfo, node_json
from chordshare.transport.grpc import describe_rpc_error
from chordshare.transport.security import PeerSecurity, SecurityError

T = TypeVar("T")

app = typer.Typer(
    help="Peer-to-peer file sharing on a self-healing Chord ring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)  # a line of output is never cut: it may hold a path
err_console = Console(stderr=True, soft_wrap=True)  # one line per message, never wrapped

NodeOption = Annotated[str, typer.Option("--node", "-n", help="Address HOST:PORT of a node.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

# How client commands (info, ring, put, get, ...) authenticate to nodes: set once by the
# options before the command (`chordshare --cluster-token-file F ls -n H:P`) or the
# same CHORDSHARE_* variables a node reads.
_client_security = PeerSecurity()


def client_security() -> PeerSecurity:
    return _client_security


def show_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        out.print(f"chordshare {version('chordshare')}", highlight=False)
        raise typer.Exit()


@app.callback()
def security_options(
    cluster_token: Annotated[
        str | None,
        typer.Option(
            envvar="CHORDSHARE_CLUSTER_TOKEN",
            help="The network's cluster token (prefer the file or the variable: "
            "arguments are visible to other users).",
        ),
    ] = None,
    cluster_token_file: Annotated[
        Path | None,
        typer.Option(envvar="CHORDSHARE_CLUSTER_TOKEN_FILE", help="A file holding the token."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar="CHORDSHARE_TLS_CERT", help="Certificate for mutual TLS (PEM)."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="CHORDSHARE_TLS_KEY", help="Its private key (PEM).")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(envvar="CHORDSHARE_TLS_CA", help="The network's CA certificate (PEM)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=show_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Peer-to-peer file sharing on a self-healing Chord ring."""
    global _client_security
    try:
        _client_security = PeerSecurity.load(
            cluster_token, cluster_token_file, tls_cert, tls_key, tls_ca
        )
    except SecurityError as err:
        fail(str(err))


def fail(message: str, code: int = 2) -> NoReturn:
    # escape: messages quote addresses such as [fe80::1]:7000, which are not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


async def with_client(address: str, use: Callable[[NodeClient], Awaitable[T]]) -> T:
    try:
        address = node_address(address)
        client = await NodeClient.connect(address, security=client_security())
    except ValueError as err:
        fail(str(err))
    except PeerError as err:
        if await asyncio.to_thread(answers_http, address):
            fail(not_a_peer_port(address))
        fail(f"cannot reach {err.address}: {err.reason}")
    try:
        return await use(client)
    except PeerError as err:
        fail(f"{err.address}: {err.reason}")
    except ValueError as err:
        fail(str(err))
    finally:
        await client.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it exists: grpc.aio calls cost half as much there."""
    try:
        import uvloop
    except ImportError:  # not built for this platform
        return asyncio.run(coro)
    return uvloop.run(coro)


def short(node: NodeRef | None) -> str:
    return "-" if node is None else f"{node.id} ({node.address})"


@app.command()
def info(node: NodeOption, as_json: JsonOption = False) -> None:
    """A node's id, predecessor, successor list and finger table."""
    result: NodeInfo = run(with_client(node, lambda c: c.info()))
    if as_json:
        print_json(result.to_json())
        return
    out.print(f"[bold]node[/] {short(result.node)}   ring: {result.bits}-bit ids")
    out.print(f"[bold]predecessor[/] {short(result.predecessor)}")
    out.print(nodes_table(result.successors, "successor list"))
    fingers = Table(title="finger table")
    fingers.add_column("i", justify="right")
    fingers.add_column("start")
    fingers.add_column("node id")
    fingers.add_column("address")
    previous = None
    for i, f in enumerate(result.fingers):
        if f.node == previous and i not in (0, len(result.fingers) - 1) and result.bits > 16:
            continue  # a wide ring repeats the same node for many fingers: show changes only
        previous = f.node
        fingers.add_row(
            str(i),
            str(f.start),
            "-" if f.node is None else str(f.node.id),
            "" if f.node is None else f.node.address,
        )
    out.print(fingers)


@app.command()
def ring(node: NodeOption, as_json: JsonOption = False) -> None:
    """The ring, walked along successors from a node."""
    nodes = run(with_client(node, lambda c: c.ring()))
    if as_json:
        print_json({"nodes": [node_json(n) for n in nodes]})
        return
    out.print(ring_table(nodes, node))


def ring_table(nodes: Sequence[NodeRef], start: str) -> Table:
    """The ring as walked from `start`, one row per node."""
    return nodes_table(nodes, f"ring of {len(nodes)} node(s), from {start}")


def nodes_table(nodes: Sequence[NodeRef], title: str) -> Table:
    """Nodes in order (a ring, a successor list), one numbered row each."""
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("id")
    table.add_column("address")
    for i, n in enumerate(nodes, 1):
        table.add_row(str(i), str(n.id), n.address)
    return table


@app.command()
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

    async def go(client: NodeClient) -> dict[str, Any]:
        ident = client.space.hash(key) if key_id is None else client.space.check(key_id)
        return (await client.lookup(ident)).to_json(ident)

    result = run(with_client(node, go))
    if as_json:
        print_json(result)
        return
    owner = result["owner"]
    out.print(
        f"key {result['key']} is owned by node {owner['id']} at {owner['address']} "
        f"({result['hops']} hop(s))",
        highlight=False,
    )


@app.command()
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
    as_json: JsonOption = False,
) -> None:
    """Simulate a ring on the in-memory network with the same protocol core.

    A ring that does not heal after --fail is a result, not an error: it is reported with
    converged false and the problems left, and the command still exits 0."""
    from chordshare.sim.experiment import run_experiment

    if nodes < 1 or lookups < 0 or successors < 1 or not 0.0 <= fail_fraction < 1.0:
        fail("need --nodes >= 1, --lookups >= 0, --successors >= 1 and 0 <= --fail < 1")
    try:
        result = run_experiment(
            nodes=nodes,
            lookups=lookups,
            successors=successors,
            fail=fail_fraction,
            seed=seed,
            bits=bits,
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
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


ApiOption = Annotated[
    str | None,
    typer.Option(
        help="URL of the node's REST API (it prints 'api at URL'; default: found for a node "
        "running on this machine)."
    ),
]
ApiTokenFileOption = Annotated[
    Path | None,
    typer.Option(
        envvar="CHORDSHARE_API_TOKEN_FILE",
        help="A file holding the node's API token (default: the node's own, when this user "
        "can read its data directory).",
    ),
]


@app.command()
def console(
    node: NodeOption, api: ApiOption = None, api_token_file: ApiTokenFileOption = None
) -> None:
    """An interactive console on one node: ring and files, with history and tab completion."""
    from chordshare.faces.console import run_console

    setup_logging("warning")
    try:
        node = node_address(node)
    except ValueError as err:
        fail(str(err))
    run_console(node, api, client_security(), api_token_file)


@app.command()
def leave(
    node: NodeOption, api: ApiOption = None, api_token_file: ApiTokenFileOption = None
) -> None:
    """Ask a node to leave the ring gracefully and exit (through its REST API)."""
    from chordshare.faces.local_nodes import LeaveError, ask_to_leave

    try:
        ask_to_leave(node_address(node), api, api_token_file)
    except (ValueError, LeaveError) as err:
        fail(str(err))
    out.print(f"{node} is leaving the ring", highlight=False, markup=False)


@app.command()
def certs(
    directory: Annotated[Path, typer.Argument(help="Where to write (created if missing).")],
    names: Annotated[list[str], typer.Argument(help="A certificate for each of these names.")],
    host: Annotated[
        list[str] | None,
        typer.Option(help="Also name this host or IP in every certificate (repeatable)."),
    ] = None,
) -> None:
    """Make a CA (once) and node certificates for a network's mutual TLS."""
    from chordshare.transport.certs import make_certificates

    try:
        written = make_certificates(directory, names, host or [])
    except (OSError, ValueError) as err:
        fail(str(err))
    out.print(
        f"{'made' if written.created_ca else 'reused'} the CA {written.ca} (keep ca-key.pem "
        "private: it admits nodes to the network)",
        highlight=False,
        markup=False,
    )
    for path in written.nodes:
        key = path.with_name(path.stem + "-key.pem")
        out.print(
            f"node: --tls-cert {path} --tls-key {key} --tls-ca {written.ca}",
            highlight=False,
            markup=False,
        )


@app.command()
def health(
    node: NodeOption,
    deadline: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 3.0,
) -> None:
    """Exit 0 if the node is serving on a ring (grpc.health.v1), 1 if not: for probes."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        node = node_address(node)
    except ValueError as err:
        fail(str(err))

    async def check() -> int:
        channel = client_security().channel(node, [])
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=deadline
            )
        except grpc.aio.AioRpcError as err:
            err_console.print(f"{node}: {describe_rpc_error(err)}", highlight=False, markup=False)
            return 1
        finally:
            await channel.close()
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        out.print(status.lower().replace("_", " "), highlight=False)
        return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1

    raise typer.Exit(run(check()))


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(help="How many nodes to start.")] = 4,
    teaching: Annotated[
        bool, typer.Option(help="The seed's teaching ring: --bits 5, ids 1, 5, 20, 28.")
    ] = False,
    base_port: Annotated[
        int, typer.Option(help="First port (the others follow); 0 picks free ports.")
    ] = 0,
) -> None:
    """Start a local network of nodes in this process and print the ring."""
    from chordshare.faces.demo import run_demo

    setup_logging("warning")
    if nodes < 1:
        fail("--nodes must be at least 1")
    try:
        run(run_demo(nodes, teaching, base_port, out))
    except (StartError, JoinError) as err:
        fail(str(err))


# The node and file commands register themselves on `app`.
from chordshare.faces import files_cli, node_cli  # noqa: E402

__all__ = ["app", "files_cli", "main", "node_cli"]


def main() -> None:
    tune_malloc()  # before any thread starts: gRPC's, the event loop's workers
    app()


if __name__ == "__main__":
    # Run as `python -m chordshare.faces.cli`: use the module under its real name, the one
    # the file commands registered themselves on.
    from chordshare.faces.cli import main as registered_main

    registered_main()
