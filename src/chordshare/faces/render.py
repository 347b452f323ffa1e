"""What the CLI and the console print on a terminal: nodes, fingers and files as Rich
tables, sizes in binary units, the closing line of a put or a get, and a failure as one red
line.

Text that came from the network (file names, a peer's messages) is printed through
`printable`, never as Rich markup: a file may be called `[bold]x` or hold an escape
sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from chordshare.files.names import printable

if TYPE_CHECKING:
    from chordshare.chord.messages import NodeRef
    from chordshare.files.manifest import Manifest
    from chordshare.files.unfinished import Resume
    from chordshare.transport.client import NodeInfo

# soft_wrap: a line is never cut (it may hold a path), a message never wrapped; no emoji:
# a file called `a:smile:.txt` is printed as it is called.
out = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)

# A column beside name, size and hash: its header, and how a file's JSON fills it.
Column = tuple[str, Callable[[dict[str, Any]], str]]
KIND_COLUMN: Column = ("kind", lambda f: "shared" if f["shared"] else "stored")
HOLDERS_COLUMN: Column = ("holders", lambda f: ", ".join(f["holders"]))


def print_error(message: str) -> None:
    # escape: messages quote addresses such as [fe80::1]:7000, which are not markup;
    # printable: a peer's message may quote a file name raw
    err_console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False)


def short(node: NodeRef | None) -> str:
    return "-" if node is None else f"{node.id} ({node.address})"


def nodes_table(nodes: Sequence[NodeRef], title: str) -> Table:
    """Nodes in order (a ring, a successor list), one numbered row each."""
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("id")
    table.add_column("address")
    for i, n in enumerate(nodes, 1):
        table.add_row(str(i), str(n.id), n.address)
    return table


def ring_table(nodes: Sequence[NodeRef], start: str) -> Table:
    """The ring as walked from `start`, one row per node."""
    return nodes_table(nodes, f"ring of {len(nodes)} node(s), from {start}")


def finger_table(info: NodeInfo) -> Table:
    """A node's fingers, one row each; on a wide ring, where one node fills many fingers in
    a row, only the first and last finger and those where the node changes."""
    table = Table(title="finger table")
    table.add_column("i", justify="right")
    table.add_column("start")
    table.add_column("node id")
    table.add_column("address")
    previous = None
    for i, f in enumerate(info.fingers):
        if f.node == previous and i not in (0, len(info.fingers) - 1) and info.bits > 16:
            continue
        previous = f.node
        table.add_row(
            str(i),
            str(f.start),
            "-" if f.node is None else str(f.node.id),
            "" if f.node is None else f.node.address,
        )
    return table


def finger_runs_table(info: NodeInfo) -> Table:
    """A node's fingers with each run of fingers that name the same node as one row: its
    range of i and its first start."""
    table = Table(title=f"finger table of {short(info.node)}, {info.bits}-bit ids")
    table.add_column("i", justify="right")
    table.add_column("start", overflow="fold")  # 160-bit ids: wrap, never elide
    table.add_column("node id", overflow="fold")
    table.add_column("address")
    runs: list[tuple[int, int, int, NodeRef | None]] = []  # first i, last i, start, node
    for i, finger in enumerate(info.fingers):
        if runs and runs[-1][3] == finger.node:
            runs[-1] = (runs[-1][0], i, runs[-1][2], finger.node)
        else:
            runs.append((i, i, finger.start, finger.node))
    for first, last, start, node in runs:
        table.add_row(
            str(first) if first == last else f"{first}-{last}",
            str(start),
            "-" if node is None else str(node.id),
            "" if node is None else node.address,
        )
    return table


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


def network_text(text: str) -> Text:
    """Text from the network as a terminal may show it: control characters escaped, and
    never read as Rich markup."""
    return Text(printable(text))


def files_table(title: str, files: Iterable[dict[str, Any]], extra: Column | None = None) -> Table:
    """Files (as the JSON of ls, ls --all or search) as a table: name, size, a short hash,
    and `extra` when given."""
    table = Table(title=Text(printable(title), style="table.title"))
    table.add_column("name")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    files = list(files)
    published = any("publisher" in f for f in files)  # listings say; search results do not
    if published:
        table.add_column("publisher")
    if extra is not None:
        table.add_column(extra[0])
    for f in files:
        name = f["name"]
        if f.get("conflict_of"):  # kept aside: written apart from the one named
            name += f"  (conflict of {f['conflict_of']})"
        if f.get("kind") == "folder":
            count = "" if f.get("files") is None else f", {f['files']} file(s)"
            name += f"/  (folder{count})"
        row = [name, human(f["size"]), f["sha256"][:16] + "…"]
        row += [f.get("publisher") or "unsigned"] if published else []
        row += [extra[1](f)] if extra is not None else []
        table.add_row(*(network_text(cell) for cell in row))
    return table


def stored_line(manifest: Manifest, unchanged: bool) -> str:
    """What a put says when it is done."""
    verb = "already stored" if unchanged else "stored"
    return (
        f"{verb} {printable(manifest.name)} ({human(manifest.size)}, "
        f"sha256 {manifest.sha256.hex()[:16]}…)"
    )


def resumed_line(name: str, note: Resume) -> str:
    """What a put says when it finds its interrupted put on the owner (on stderr)."""
    if note.changed:
        return f"{printable(name)} changed since its interrupted put: putting it from the start"
    return f"resuming: {human(note.held_bytes)} already on the node"


def got_line(name: str, size: int, path: str, sources: dict[str, int]) -> str:
    """What a get says when it is done."""
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
