"""The file commands of the `chordshare` CLI: put, get, search, ls, rm.

The CLI is a client, not a peer: it asks the node given by --node to look keys up, then
talks to the owners and holders directly, so a download pulls from every holder at once.
"""

# No `from __future__ import annotations`: see cli_app.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chordshare.faces.cli_app import (
    JsonOption,
    NodeOption,
    client_security,
    connected,
    connected_any,
    fail,
    print_json,
)
from chordshare.faces.clients import Clients
from chordshare.faces.identity_cli import IdentityOption, publisher
from chordshare.faces.loops import run
from chordshare.faces.render import (
    HOLDERS_COLUMN,
    KIND_COLUMN,
    err_console,
    files_table,
    got_line,
    human,
    interrupted_line,
    out,
    resumed_line,
    stored_line,
)
from chordshare.faces.shapes import (
    entries_json,
    folder_records,
    listing_json,
    manifest_json,
    network_json,
    with_folders,
)
from chordshare.files.folders import check_plain_name, folder_of
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import printable

if TYPE_CHECKING:
    from chordshare.files.links import Link
    from chordshare.files.messages import PutOutcome
    from chordshare.files.unfinished import Resume
    from chordshare.sharing.client import NetworkFile

LimitRateOption = Annotated[
    str | None,
    typer.Option(
        help="Most bytes per second this transfer moves, e.g. 500K, 4M or 1MiB; 0: no limit "
        "(the default)."
    ),
]


def _rate(text: str | None) -> float:
    """--limit-rate as bytes per second (0: none); a bad one ends the command in one line."""
    from chordshare.sizes import parse_rate

    try:
        return 0 if text is None else parse_rate(text)
    except ValueError as err:
        fail(f"--limit-rate: {err}")


def put(
    file: Annotated[Path, typer.Argument(help="The local file or folder to share.")],
    node: NodeOption,
    name: Annotated[
        str | None, typer.Option(help="Name in the network (default: file name).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Replace a file of that name that has other bytes.")
    ] = False,
    identity: IdentityOption = None,
    limit_rate: LimitRateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a file in the network (on its owner and the owner's successors), signed with
    your publisher key: only that key can replace or remove it. A folder is stored as one:
    its small files in packs, its larger ones under NAME/its/path, and the folder's manifest
    (no symbolic links in it)."""
    from chordshare.faces.transfers import put_source, transfer_bar

    rate = _rate(limit_rate)
    if file.is_dir():
        from chordshare.faces.folders_cli import put_folder

        return put_folder(file, node, name, replace, identity, rate, as_json)
    try:
        size = put_source(file)
        check_plain_name(name if name is not None else file.name)
    except ValueError as err:
        fail(printable(str(err)))
    signer = publisher(identity)  # made on first use: not for a put refused already
    bar, advance = transfer_bar(f"put {name or file.name}", size, not as_json)
    found: list[Resume] = []  # what a rerun of an interrupted put found on the owner

    def resumed(note: "Resume") -> None:
        found.append(note)
        line = resumed_line(name or file.name, note)
        err_console.print(line, highlight=False, markup=False)

    async def go(clients: Clients) -> "PutOutcome":
        with bar:
            files = clients.files(signer=signer, rate=rate)
            return await files.put(file, name, replace=replace, progress=advance, resumed=resumed)

    outcome = run(connected(node, go))
    if as_json:
        held = found[0].held_bytes if found else 0
        print_json(
            {**manifest_json(outcome.manifest), "unchanged": outcome.unchanged, "resumed": held}
        )
        return
    out.print(stored_line(outcome.manifest, outcome.unchanged), highlight=False, markup=False)


def get(
    target: Annotated[
        str,
        typer.Argument(
            help="A file name, sha256:<hex> for content, or a chordshare:// link (then "
            "--node is not needed)."
        ),
    ],
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="Address HOST:PORT of a node.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where to write (default: ./NAME).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a file that is there already.")] = False,
    limit_rate: LimitRateOption = None,
    keep: Annotated[
        bool,
        typer.Option(
            help="Ask the node the get went through to keep a copy and serve it to other "
            "getters (it downloads the file once more).",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Download a file, pulling its chunks from every holder at once; resumes if stopped."""
    from chordshare.faces.transfers import destination, transfer_bar

    rate = _rate(limit_rate)
    link = _link_of(target)
    if link is None and node is None:
        fail("give --node HOST:PORT (any node of the network), or a chordshare:// link")
    writing: list[Path] = []  # where, once known: an interrupted get says what it kept

    async def go(clients: Clients) -> dict[str, Any]:
        files = clients.files(rate=rate)
        if link is not None and folder_of(link.name) is not None:
            from chordshare.faces.folders_cli import get_linked_folder

            return await get_linked_folder(clients, link, output, force, rate, not as_json)
        if link is not None:
            found: NetworkFile = await files.find_link(link)
        else:
            try:
                found = await files.find(target)
            except FileError as err:
                folder = await _folder_instead(clients, err, target, output, force, rate, as_json)
                if folder is None:
                    raise
                return folder
        path = destination(found.manifest.name, output, force)
        writing.append(path)
        bar, advance = transfer_bar(f"get {found.manifest.name}", found.manifest.size, not as_json)
        with bar:
            report = await files.get(
                target, path, progress=advance, found=found, exact=link is not None
            )
        if keep:
            from chordshare.faces.clients import ask_to_keep

            await ask_to_keep(files.peers, clients.node.address, found.manifest)
        return {
            "name": found.manifest.name,
            "size": report.size,
            "sha256": report.sha256.hex(),
            "path": str(report.path),
            "sources": [{"address": a, "bytes": b} for a, b in sorted(report.sources.items())],
            "resumed_chunks": report.resumed_chunks,
        }

    asked = [node] if node is not None else []
    try:
        result = run(connected_any([*asked, *(link.via if link else ())], go))
    except KeyboardInterrupt:
        message = interrupted_line(writing[0]) if writing else "interrupted"
        err_console.print(message, highlight=False, markup=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result)
        return
    if result.get("kind") == "folder":
        from chordshare.faces.folders_cli import got_folder_line

        out.print(got_folder_line(result), highlight=False, markup=False)
        return
    sources = {s["address"]: s["bytes"] for s in result["sources"]}
    out.print(
        got_line(result["name"], result["size"], result["path"], sources),
        highlight=False,
        markup=False,
    )


def _link_of(target: str) -> "Link | None":
    """The link a get's target is, if it is one (one line and exit 2 for a broken one)."""
    from chordshare.files.links import BadLink, looks_like_link, parse_link

    if not looks_like_link(target):
        return None
    try:
        return parse_link(target)
    except BadLink as err:
        fail(str(err))


def link(
    name: Annotated[str, typer.Argument(help="The file's or folder's name.")],
    node: NodeOption,
    as_json: JsonOption = False,
) -> None:
    """Print a link to a file's exact bytes, with nodes to ask: `chordshare get LINK` fetches
    them from any machine that reaches one, and checks them against the link. A folder's
    link names that version of every file in it: `get LINK` saves the folder."""
    from chordshare.faces.linking import find_linkable, link_json
    from chordshare.files.links import make_link

    async def go(clients: Clients) -> tuple["Link", "NetworkFile"]:
        found = await find_linkable(clients.files(), name)
        via = [*found.holders, clients.node.address]
        return make_link(found.manifest.id, found.manifest.name, via), found

    made, found = run(connected(node, go))
    token = client_security().token is not None
    if as_json:
        print_json(link_json(made, found.manifest, token))
        return
    out.print(str(made), highlight=False, markup=False, soft_wrap=True)
    if token:
        err_console.print(
            "this network has a cluster token: whoever opens the link needs it too "
            "(chordshare --cluster-token-file FILE get LINK)",
            highlight=False,
            markup=False,
        )


async def _folder_instead(
    clients: Clients,
    err: "FileError",
    target: str,
    output: Path | None,
    force: bool,
    rate: float,
    as_json: bool,
) -> dict[str, Any] | None:
    """A get of a name no file has: the folder of that name, if there is one."""
    if err.refusal is not Refusal.NOT_FOUND or target.startswith("sha256:"):
        return None
    from chordshare.faces.folders_cli import get_folder

    return await get_folder(clients, target, output, force, rate, not as_json)


def search(
    words: Annotated[list[str], typer.Argument(help="Words every name found must contain.")],
    node: NodeOption,
    as_json: JsonOption = False,
) -> None:
    """Find files by the words of their names (`search report` finds q3-report.pdf)."""

    async def go(clients: Clients) -> list[dict[str, Any]]:
        return entries_json(await clients.files().search(" ".join(words)))

    found = run(connected(node, go))
    if as_json:
        print_json({"files": found})
        return
    out.print(files_table(f"{len(found)} file(s) matching {' '.join(words)!r}", found))


def list_files(
    node: NodeOption,
    every: Annotated[bool, typer.Option("--all", help="Every file in the network.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The files a node stores and shares (--all: every file in the network)."""

    async def go(clients: Clients) -> dict[str, Any]:
        if every:
            listed = network_json(await clients.files().list_network(await clients.node.ring()))
        else:
            # One node's files are one call to it: no FileClient, nor what it loads, is
            # needed unless it holds a folder's manifest.
            address = clients.node.address
            listed = listing_json(address, await clients.peers.at(address).list_files())
        names = folder_records(listed["files"])
        if names:
            from chordshare.faces.folders_cli import folder_client

            found = await folder_client(clients).summaries(names)
            listed["files"] = with_folders(listed["files"], found)
        return listed

    result = run(connected(node, go))
    if as_json:
        print_json(result)
        return
    title = (
        f"{len(result['files'])} file(s) in the network"
        if every
        else f"{len(result['files'])} file(s) on {result['node']} "
        f"({human(result['used_bytes'])} stored)"
    )
    out.print(files_table(title, result["files"], HOLDERS_COLUMN if every else KIND_COLUMN))


def rm(
    name: Annotated[str, typer.Argument(help="The file's or folder's name.")],
    node: NodeOption,
    identity: IdentityOption = None,
) -> None:
    """Remove a file from the network (from its owner and every replica), or a folder and
    every file in it; only its publisher's key can."""
    signer = publisher(identity, create=False)

    async def go(clients: Clients) -> str:
        try:
            await clients.files(signer=signer).remove(name)
        except FileError as err:
            if err.refusal is not Refusal.NOT_FOUND:
                raise
            from chordshare.faces.folders_cli import remove_folder, removed_folder_line

            try:
                return removed_folder_line(await remove_folder(clients, name, signer))
            except FileError as folder_err:
                if folder_err.refusal is Refusal.NOT_FOUND:
                    raise err from None
                raise
        return f"removed {printable(name)}"

    out.print(run(connected(node, go)), highlight=False, markup=False)
