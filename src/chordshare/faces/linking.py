"""What a link is made to (`chordshare link NAME`, `GET /api/v1/link`): a file of its own,
or a folder's manifest file, which names every file of that version of the folder by its
exact manifest id. A file inside a folder's pack (`files.packs`) has no manifest of its
own for a link to name, so asking for its link says to link its folder instead."""

from __future__ import annotations

from typing import Any

from chordshare.faces.shapes import manifest_json
from chordshare.files.folders import BadFolder, folder_name, folder_of, record_name
from chordshare.files.links import Link
from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import BadName
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.folder_client import FolderClient


async def find_linkable(files: FileClient, name: str) -> NetworkFile:
    """The file `name` names, or the manifest file of folder `name`, to link to;
    FileError NOT_FOUND when there is neither, saying so of a file inside a folder's pack."""
    try:
        return await files.find(name)
    except FileError as err:
        if err.refusal is not Refusal.NOT_FOUND:
            raise
        missing = err
    folder = await _folder_record(files, name)
    if folder is not None:
        return folder
    inside = await FolderClient(files).find_path(name)
    if inside is None or inside[1].pack is None:
        raise missing
    raise FileError(
        Refusal.NOT_FOUND,
        f"{name!r} is a file inside folder {inside[0].name!r}, packed with its other small "
        f"files: it has no link of its own; link the folder (chordshare link "
        f"{inside[0].name}) or get the file by its name",
    ) from None


def link_json(made: Link, manifest: Manifest, needs_token: bool) -> dict[str, Any]:
    """A link as the CLI's --json and the REST API show it; `kind` "folder" for a link
    that opens as a folder (to its manifest file), None for a file."""
    return {
        **manifest_json(manifest),
        "link": str(made),
        "kind": None if folder_of(manifest.name) is None else "folder",
        "manifest_id": made.manifest_id.hex(),
        "needs_cluster_token": needs_token,
    }


async def _folder_record(files: FileClient, name: str) -> NetworkFile | None:
    """The manifest file of folder `name`; None when there is no such folder."""
    try:
        return await files.find(record_name(folder_name(name)))
    except (BadFolder, BadName):  # no folder can have that name
        return None
    except FileError as err:
        if err.refusal is Refusal.NOT_FOUND:
            return None
        raise
