"""The file a link is made to (`chordshare link NAME`, `GET /api/v1/link`): a file of its
own. A file inside a folder's pack (`files.packs`) has no manifest of its own for a link
to name, so asking for its link says so instead of "no file named"."""

from __future__ import annotations

from chordshare.files.messages import FileError, Refusal
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.folder_client import FolderClient


async def find_linkable(files: FileClient, name: str) -> NetworkFile:
    """The file `name` names, to link to; FileError NOT_FOUND when there is none, saying
    so of a file inside a folder's pack."""
    try:
        return await files.find(name)
    except FileError as err:
        if err.refusal is not Refusal.NOT_FOUND:
            raise
        inside = await FolderClient(files).find_path(name)
        if inside is None or inside[1].pack is None:
            raise
        raise FileError(
            Refusal.NOT_FOUND,
            f"{name!r} is a file inside folder {inside[0].name!r}, packed with its other "
            "small files: it has no link of its own (nor has a folder); get it by its name",
        ) from None
