"""Folders in the `chordshare` CLI: `put DIR`, `get NAME` of a folder, `rm NAME` of a
folder, and what `ls` and `search` show of one. The file commands hand a folder here."""

# No `from __future__ import annotations`: see cli_app.

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chordshare.faces.cli_app import connected, print_json
from chordshare.faces.loops import run
from chordshare.faces.render import err_console, human, out
from chordshare.faces.shapes import folder_json
from chordshare.faces.transfers import destination, transfer_bar
from chordshare.files.folders import check_folder_name
from chordshare.files.names import local_name, printable

if TYPE_CHECKING:
    from chordshare.faces.clients import Clients
    from chordshare.files.folders import Folder
    from chordshare.files.links import Link
    from chordshare.files.publisher import Signer
    from chordshare.sharing.folder_client import FolderClient


def folder_client(
    clients: "Clients", signer: "Signer | None" = None, rate: float = 0
) -> "FolderClient":
    from chordshare.sharing.folder_client import FolderClient

    return FolderClient(clients.files(signer=signer, rate=rate))


def default_name(root: Path) -> str:
    """A folder's name when --name is not given: the folder's own name (`.` too)."""
    return root.name or root.resolve().name


def put_folder(
    root: Path,
    node: str,
    name: str | None,
    replace: bool,
    identity: Path | None,
    rate: float,
    as_json: bool,
) -> None:
    """`chordshare put DIR`: the tree as one folder (`sharing.folder_client`). The tree is
    walked and checked first: a tree that cannot be put is refused before anything else
    (a first put's publisher key is not made for it)."""
    from chordshare.faces.cli_app import fail
    from chordshare.faces.identity_cli import publisher
    from chordshare.sharing.local_tree import walk

    name = name if name is not None else default_name(root)
    try:
        check_folder_name(name)
        found = walk(root)
    except (ValueError, OSError) as err:  # BadFolder, or a folder that cannot be read
        fail(printable(str(err)))
    signer = publisher(identity)
    shown = not as_json and err_console.is_terminal  # a bar only where it is seen
    size = sum(item.size for item in found if item.kind == "file")
    bar, advance = transfer_bar(f"put {name}/", size, shown)

    async def go(clients: "Clients") -> dict[str, Any]:
        with bar:
            client = folder_client(clients, signer, rate)
            put = await client.put(root, name, replace, advance, found)
        return {**folder_json(put.folder), "unchanged": put.unchanged, "removed": put.removed}

    result = run(connected(node, go))
    if as_json:
        print_json(result)
        return
    verb = "already stored" if result["unchanged"] else "stored"
    removed = f"; {result['removed']} file(s) no longer in it removed" if result["removed"] else ""
    out.print(
        f"{verb} folder {printable(name)} ({_counted(result)}){removed}",
        highlight=False,
        markup=False,
    )


async def get_folder(
    clients: "Clients", name: str, output: Path | None, force: bool, rate: float, shown: bool
) -> dict[str, Any] | None:
    """`chordshare get NAME` of a folder: saved as `output`, or as ./LAST-PART-OF-NAME;
    a file inside a folder's pack (`NAME/sub/file`) as a get of a file saves it; None
    when there is no such folder or file either."""
    folders = folder_client(clients, rate=rate)
    folder = await folders.find(name)
    if folder is None:
        return await get_packed(folders, name, output, force, shown)
    return await _saved(folders, folder, output, force, shown)


async def get_linked_folder(
    clients: "Clients", link: "Link", output: Path | None, force: bool, rate: float, shown: bool
) -> dict[str, Any]:
    """`chordshare get LINK` of a folder's link: the very version the link names, saved as
    a get of the folder saves it."""
    folders = folder_client(clients, rate=rate)
    return await _saved(folders, await folders.find_linked(link), output, force, shown)


async def _saved(
    folders: "FolderClient", folder: "Folder", output: Path | None, force: bool, shown: bool
) -> dict[str, Any]:
    """The folder saved as `output`, or as ./LAST-PART-OF-ITS-NAME, with a progress bar."""
    dest = output if output is not None else Path(local_name(folder.name))
    bar, advance = transfer_bar(f"get {folder.name}/", folder.size, shown)
    with bar:
        got = await folders.get(folder.name, dest, force, folder, advance)
    return {**folder_json(got.folder), "path": str(got.path)}


async def get_packed(
    folders: "FolderClient", name: str, output: Path | None, force: bool, shown: bool
) -> dict[str, Any] | None:
    """A get of `NAME/sub/file` inside a folder (the CLI's and the console's): saved as a
    get of a file saves it, the same result; None when no folder holds such a file."""
    inside = await folders.find_path(name)
    if inside is None or inside[1].kind != "file":
        return None
    folder, entry = inside
    path = destination(name, output, force)
    bar, advance = transfer_bar(f"get {name}", entry.size, shown)
    with bar:
        served = await folders.fetch(folder, entry, path)
        advance(entry.size)
    return {
        "name": name,
        "size": entry.size,
        "sha256": entry.sha256.hex(),
        "path": str(path),
        "sources": [{"address": a, "bytes": b} for a, b in sorted(served.items())],
        "resumed_chunks": 0,
    }


def got_folder_line(result: dict[str, Any]) -> str:
    return (
        f"got folder {printable(result['name'])} ({_counted(result)}) into "
        f"{printable(result['path'])}"
    )


async def remove_folder(clients: "Clients", name: str, signer: "Signer | None") -> "Folder":
    return await folder_client(clients, signer).remove(name)


def removed_folder_line(folder: "Folder") -> str:
    return f"removed folder {printable(folder.name)} ({len(folder.files)} file(s))"


def _counted(result: dict[str, Any]) -> str:
    return f"{result['files']} file(s), {human(result['size'])}"
