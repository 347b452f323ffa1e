"""The file commands of the `chordshare` CLI: put, get, search, ls, rm.

The CLI is a client, not a peer: it asks the node given by --node to look keys up, then
talks to the owners and holders directly, so a download pulls from every holder at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from chordshare.faces.cli import (
    JsonOption,
    NodeOption,
    app,
    err_console,
    fail,
    out,
    print_json,
    run,
    with_client,
)
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.download import DownloadError
from chordshare.sharing.names import BadName, printable
from chordshare.sharing.peers import FileError, FileListing, IndexEntry, PutOutcome, Refusal
from chordshare.sharing.placement import DEFAULT_REPLICAS
from chordshare.sharing.ring import RemoteRing
from chordshare.sharing.rpc import GrpcFilePeers
from chordshare.storage.catalog import Manifest
from chordshare.transport.client import NodeClient

T = TypeVar("T")


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "size": manifest.size,
        "sha256": manifest.sha256.hex(),
        "chunks": len(manifest.chunks),
        "created": manifest.created,
    }


def listing_json(address: str, listing: FileListing) -> dict[str, Any]:
    """What one node stores and shares (ls, the API's files of a node)."""
    return {
        "node": address,
        "used_bytes": listing.used_bytes,
        "max_bytes": listing.max_bytes,
        "files": [{**manifest_json(s.manifest), "shared": s.shared} for s in listing.files],
    }


def network_json(found: Sequence[NetworkFile]) -> dict[str, Any]:
    """Every file in the network with its holders (ls --all, the API's network scope)."""
    return {"files": [{**manifest_json(f.manifest), "holders": list(f.holders)} for f in found]}


def entries_json(entries: Iterable[IndexEntry]) -> list[dict[str, Any]]:
    """Search results (search, the API's search)."""
    return [{"name": e.name, "size": e.size, "sha256": e.sha256.hex()} for e in entries]


def network_text(text: str) -> Text:
    """Text from the network as a terminal may show it: control characters escaped, and
    never read as Rich markup (a file may be called `[bold]x`)."""
    return Text(printable(text))


def files_table(
    title: str,
    files: Iterable[dict[str, Any]],
    extra: tuple[str, Callable[[dict[str, Any]], str]] | None = None,
) -> Table:
    """Files (as the JSON of ls, ls --all or search) as a table: name, size, a short hash,
    and `extra`, a column header with how to fill it, when given."""
    table = Table(title=Text(printable(title), style="table.title"))
    table.add_column("name")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    if extra is not None:
        table.add_column(extra[0])
    for f in files:
        row = [f["name"], human(f["size"]), f["sha256"][:16] + "…"]
        row += [extra[1](f)] if extra is not None else []
        table.add_row(*(network_text(cell) for cell in row))
    return table


KIND_COLUMN = ("kind", lambda f: "shared" if f["shared"] else "stored")
HOLDERS_COLUMN = ("holders", lambda f: ", ".join(f["holders"]))


class SpeedColumn(ProgressColumn):
    """The transfer's speed in the binary units every other figure uses (Rich's own column
    counts in decimal MB)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human(int(speed))}/s", style="progress.data.speed")


def transfer_bar(what: str, total: int, shown: bool) -> tuple[AbstractContextManager, Callable]:
    """A Rich progress bar on stderr (only on a terminal) and the callback that feeds it."""
    if not shown or not err_console.is_terminal:
        return nullcontext(), lambda n: None
    progress = Progress(
        TextColumn("[bold]{task.description}"),  # markup: the description is escaped
        BarColumn(),
        DownloadColumn(binary_units=True),
        SpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task(escape(printable(what)), total=total)
    return progress, lambda n: progress.advance(task, n)


async def with_files(address: str, use: Callable[[FileClient, NodeClient], Awaitable[T]]) -> T:
    async def go(client: NodeClient) -> T:
        peers = GrpcFilePeers(health=client.transport.health, security=client.transport.security)
        try:
            files = FileClient(RemoteRing(client), peers, DEFAULT_REPLICAS)
            try:
                return await use(files, client)
            except FileError as err:  # a peer's message: it may quote a name raw
                fail(printable(err.message))
            except (BadName, DownloadError) as err:
                fail(printable(str(err)))
            except OSError as err:  # local: no such file to put, a disk full, not allowed
                fail(f"{err.filename}: {err.strerror}" if err.filename else str(err))
        finally:
            await peers.close()

    return await with_client(address, go)


@app.command()
def put(
    file: Annotated[Path, typer.Argument(help="The local file to share.")],
    node: NodeOption,
    name: Annotated[
        str | None, typer.Option(help="Name in the network (default: file name).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Replace a file of that name that has other bytes.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Store a file in the network (on its owner and the owner's successors)."""
    try:
        size = put_source(file)
    except ValueError as err:
        fail(str(err))
    bar, advance = transfer_bar(f"put {name or file.name}", size, not as_json)

    async def go(files: FileClient, client: NodeClient) -> PutOutcome:
        with bar:
            return await files.put(file, name, replace=replace, progress=advance)

    outcome = run(with_files(node, go))
    if as_json:
        print_json({**manifest_json(outcome.manifest), "unchanged": outcome.unchanged})
        return
    out.print(stored_line(outcome.manifest, outcome.unchanged), highlight=False, markup=False)


def put_source(path: Path) -> int:
    """The size of the one file a put stores; ValueError saying what else `path` is."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; put stores one file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path.stat().st_size


def stored_line(manifest: Manifest, unchanged: bool) -> str:
    """What a put says when it is done (the CLI and the console)."""
    verb = "already stored" if unchanged else "stored"
    return (
        f"{verb} {printable(manifest.name)} ({human(manifest.size)}, "
        f"sha256 {manifest.sha256.hex()[:16]}…)"
    )


def destination(manifest: Manifest, output: Path | None, force: bool) -> Path:
    """Where a get writes: `output`, NAME inside it when it is a directory, or ./NAME.
    FileExistsError when a file is there already and `force` is not given."""
    path = output or Path(manifest.name)
    if path.is_dir():
        path = path / manifest.name
    if not force and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path} exists: give --force to overwrite it, or -o another path")
    return path


def got_line(name: str, size: int, path: str, sources: dict[str, int]) -> str:
    """What a get says when it is done (the CLI and the console)."""
    served = ", ".join(f"{a} ({human(b)})" for a, b in sorted(sources.items()) if b)
    if size == 0:
        return f"got {printable(name)} (an empty file) into {printable(path)}"
    where = f"served by {served}" if served else "all of it from the .part file of an earlier try"
    return f"got {printable(name)} ({human(size)}) into {printable(path)}; {printable(where)}"


def interrupted_line(path: Path) -> str:
    """What an interrupted get says: where its chunks are kept, and how to go on."""
    part = path.with_name(path.name + ".part")
    if not part.exists():
        return "interrupted; nothing was kept"
    return (
        f"interrupted; the chunks fetched so far are kept in {printable(str(part))}: run the "
        "same get again to go on from there"
    )


@app.command()
def get(
    target: Annotated[str, typer.Argument(help="A file name, or sha256:<hex> for content.")],
    node: NodeOption,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where to write (default: ./NAME).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a file that is there already.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Download a file, pulling its chunks from every holder at once; resumes if stopped."""
    writing: list[Path] = []  # where, once known: an interrupted get says what it kept

    async def go(files: FileClient, client: NodeClient) -> dict[str, Any]:
        found: NetworkFile = await files.find(target)
        path = destination(found.manifest, output, force)
        writing.append(path)
        bar, advance = transfer_bar(f"get {found.manifest.name}", found.manifest.size, not as_json)
        with bar:
            report = await files.get(target, path, progress=advance, found=found)
        return {
            "name": found.manifest.name,
            "size": report.size,
            "sha256": report.sha256.hex(),
            "path": str(report.path),
            "sources": [{"address": a, "bytes": b} for a, b in sorted(report.sources.items())],
            "resumed_chunks": report.resumed_chunks,
        }

    try:
        result = run(with_files(node, go))
    except KeyboardInterrupt:
        message = interrupted_line(writing[0]) if writing else "interrupted"
        err_console.print(message, highlight=False, markup=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result)
        return
    sources = {s["address"]: s["bytes"] for s in result["sources"]}
    out.print(
        got_line(result["name"], result["size"], result["path"], sources),
        highlight=False,
        markup=False,
    )


@app.command()
def search(
    words: Annotated[list[str], typer.Argument(help="Words every name found must contain.")],
    node: NodeOption,
    as_json: JsonOption = False,
) -> None:
    """Find files by the words of their names (`search report` finds q3-report.pdf)."""

    async def go(files: FileClient, client: NodeClient) -> list[dict[str, Any]]:
        try:
            entries = await files.search(" ".join(words))
        except ValueError as err:
            fail(str(err))
        return entries_json(entries)

    found = run(with_files(node, go))
    if as_json:
        print_json({"files": found})
        return
    out.print(files_table(f"{len(found)} file(s) matching {' '.join(words)!r}", found))


@app.command("ls")
def list_files(
    node: NodeOption,
    every: Annotated[bool, typer.Option("--all", help="Every file in the network.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The files a node stores and shares (--all: every file in the network)."""

    async def go(files: FileClient, client: NodeClient) -> dict[str, Any]:
        if every:
            return network_json(await files.list_network(await client.ring()))
        return listing_json(client.address, await files.list_node(client.address))

    result = run(with_files(node, go))
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


@app.command()
def rm(
    name: Annotated[str, typer.Argument(help="The file's name.")],
    node: NodeOption,
) -> None:
    """Remove a file from the network (from its owner and every replica)."""

    async def go(files: FileClient, client: NodeClient) -> None:
        await files.remove(name)

    run(with_files(node, go))
    out.print(f"removed {printable(name)}", highlight=False, markup=False)


__all__ = ["Refusal"]
