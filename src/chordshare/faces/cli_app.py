"""What every command of the `chordshare` command line shares: the Typer app they register
on, the options before the command (how client commands authenticate to nodes), the options
several commands take, and how a command fails.

Errors reach the user as one line on stderr and a non-zero exit (2 for bad input or an
unreachable peer), never as a traceback. Every read command takes --json for scripts.
"""

# No `from __future__ import annotations`: Typer would evaluate every signature's strings
# again each time a command runs, its options' Option() calls included (some 10 ms).

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from chordshare.faces.cli_values import PlainValues
from chordshare.faces.clients import Clients
from chordshare.faces.messages import describe, unreachable
from chordshare.faces.node_address import answers_http, node_address, not_a_peer_port
from chordshare.faces.render import out, print_error
from chordshare.transport.base import PeerError
from chordshare.transport.security import PeerSecurity, SecurityError

T = TypeVar("T")

app = typer.Typer(
    cls=PlainValues,
    help="Peer-to-peer file sharing on a self-healing Chord ring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

NodeOption = Annotated[str, typer.Option("--node", "-n", help="Address HOST:PORT of a node.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
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
    print_error(message)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    import json  # only --json needs it

    sys.stdout.write(json.dumps(value, indent=2) + "\n")


async def connected_any(addresses: Sequence[str], use: Callable[[Clients], Awaitable[T]]) -> T:
    """`connected` through the first of addresses that answers (a link's nodes)."""
    failure: PeerError | ValueError | None = None
    for address in addresses:
        try:
            clients = await Clients.open(node_address(address), client_security())
        except (PeerError, ValueError) as err:
            failure = err
            continue
        return await _using(clients, use)
    if isinstance(failure, PeerError):
        fail(unreachable(failure))
    fail(str(failure or "no node to ask"))


async def connected(address: str, use: Callable[[Clients], Awaitable[T]]) -> T:
    """What `use` makes of the clients of the node at `address`; an expected failure, to
    reach the node or later, ends the command with its one line."""
    try:
        address = node_address(address)
        clients = await Clients.open(address, client_security())
    except ValueError as err:
        fail(str(err))
    except PeerError as err:
        if await asyncio.to_thread(answers_http, address):
            fail(not_a_peer_port(address))
        fail(unreachable(err))
    return await _using(clients, use)


async def _using(clients: Clients, use: Callable[[Clients], Awaitable[T]]) -> T:
    """What `use` makes of open clients, closed after; an expected failure is one line."""
    try:
        return await use(clients)
    except Exception as err:
        message = describe(err)
        if message is None:
            raise
        fail(message)
    finally:
        await clients.close()
