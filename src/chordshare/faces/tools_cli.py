"""The `chordshare` commands around the ring and files ones: the interactive console, asking
a node to leave, certificates for mutual TLS, a health probe, and a local demo network.

Each loads what it runs (the console, the demo's nodes and REST API, the certificate maker)
only when it runs: the other commands never pay for them.
"""

# No `from __future__ import annotations`: see cli_app.

from pathlib import Path
from typing import Annotated, Any

import typer

from chordshare.faces.cli_app import (
    ApiOption,
    ApiTokenFileOption,
    NodeOption,
    client_security,
    fail,
)
from chordshare.faces.identity_cli import IdentityOption, publisher
from chordshare.faces.loops import run
from chordshare.faces.node_address import node_address
from chordshare.faces.render import err_console, out


def console(
    node: NodeOption,
    api: ApiOption = None,
    api_token_file: ApiTokenFileOption = None,
    identity: IdentityOption = None,
) -> None:
    """An interactive console on one node: ring and files, with history and tab completion.
    Its puts and removals are signed with your publisher key."""
    from chordshare.faces.console import run_console
    from chordshare.faces.logs import setup_logging

    setup_logging("warning")
    try:
        node = node_address(node)
    except ValueError as err:
        fail(str(err))
    run_console(node, api, client_security(), api_token_file, publisher(identity))


def leave(node: NodeOption) -> None:
    """Ask a node to leave the ring gracefully and exit. It takes this over loopback, or
    with the network's cluster token."""
    from chordshare.faces.leave import LeaveError, ask_to_leave

    try:
        ask_to_leave(node_address(node), client_security())
    except (ValueError, LeaveError) as err:
        fail(str(err))
    out.print(f"{node} is leaving the ring", highlight=False, markup=False)


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


def health(
    node: NodeOption,
    deadline: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 3.0,
) -> None:
    """Exit 0 if the node is serving on a ring (grpc.health.v1), 1 if not: for probes."""
    import grpc  # type: ignore[import-untyped]
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    from chordshare.transport.grpc import describe_rpc_error

    try:
        node = node_address(node)
    except ValueError as err:
        fail(str(err))

    async def check() -> int:
        channel = client_security().channel(node, [])
        # Its stubs (types-grpcio-health-checking) declare HealthStub without its methods.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=deadline)
        except grpc.aio.AioRpcError as err:
            err_console.print(f"{node}: {describe_rpc_error(err)}", highlight=False, markup=False)
            return 1
        finally:
            await channel.close()
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        out.print(status.lower().replace("_", " "), highlight=False)
        return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1

    raise typer.Exit(run(check()))


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
    from chordshare.faces.logs import setup_logging
    from chordshare.node.runtime import JoinError
    from chordshare.node.server import StartError

    setup_logging("warning")
    if nodes < 1:
        fail("--nodes must be at least 1")
    try:
        run(run_demo(nodes, teaching, base_port, out))
    except (StartError, JoinError) as err:
        fail(str(err))
