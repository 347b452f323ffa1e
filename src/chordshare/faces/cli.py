"""The `chordshare` command line: the ring, files, a node, the console, a demo, certificates.

Its commands are registered here on the one Typer app (`cli_app`), in the order
`chordshare --help` lists them. A command's heavy parts (a node, the REST API, the
simulator, the console) load only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable

from chordshare.allocator import tune_malloc
from chordshare.faces import files_cli, node_cli, ring_cli, tools_cli
from chordshare.faces.cli_app import app
from chordshare.faces.cli_values import PlainCommand
from chordshare.faces.identity_cli import id_app

COMMANDS: dict[str, Callable[..., None]] = {
    "info": ring_cli.info,
    "ring": ring_cli.ring,
    "lookup": ring_cli.lookup,
    "sim": ring_cli.sim,
    "console": tools_cli.console,
    "leave": tools_cli.leave,
    "certs": tools_cli.certs,
    "health": tools_cli.health,
    "demo": tools_cli.demo,
    "put": files_cli.put,
    "get": files_cli.get,
    "link": files_cli.link,
    "search": files_cli.search,
    "ls": files_cli.list_files,
    "rm": files_cli.rm,
    "node": node_cli.node,
}
for name, command in COMMANDS.items():
    app.command(name, cls=PlainCommand)(command)
app.add_typer(id_app, name="id")

__all__ = ["app", "main"]


def main() -> None:
    tune_malloc()  # before any thread starts: gRPC's, the event loop's workers
    app()


if __name__ == "__main__":
    main()
