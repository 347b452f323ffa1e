"""The JSON shapes of files that every face answers with: `--json` of the CLI, the tables of
the CLI and the console (built from these), and the REST API. One shape each, so a script
that reads `chordshare ls --json` reads `GET /api/v1/files` too.

Only annotations name the sharing layer's types here: the API and a CLI command that does
not need them load none of their modules for these shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from chordshare.files.folders import folder_of
from chordshare.files.names import conflict_of
from chordshare.files.packs import is_pack_name
from chordshare.files.publisher import fingerprint, key_text

if TYPE_CHECKING:
    from chordshare.files.folders import Folder
    from chordshare.files.manifest import Manifest
    from chordshare.files.messages import FileListing, IndexEntry
    from chordshare.sharing.client import NetworkFile


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    claim = manifest.claim
    return {
        "name": manifest.name,
        "size": manifest.size,
        "sha256": manifest.sha256.hex(),
        "chunks": len(manifest.chunks),
        "created": manifest.created,
        # A version kept aside because it was written apart from the one that kept the
        # name (`files.versions`): that name; None for any other file.
        "conflict_of": conflict_of(manifest.name),
        # The key it was published with (`files.publisher`): a short fingerprint and the
        # whole public key; None for a file stored before signatures, which anyone may
        # replace.
        "publisher": None if claim is None else fingerprint(claim.publisher),
        "publisher_key": None if claim is None else key_text(claim.publisher),
    }


def listing_json(address: str, listing: FileListing) -> dict[str, Any]:
    """What one node stores and shares (ls, the API's files of a node). A folder's packs
    are part of their folder, never files of their own (`files.packs`): left out, though
    their bytes count in `used_bytes`."""
    return {
        "node": address,
        "used_bytes": listing.used_bytes,
        "max_bytes": listing.max_bytes,
        "files": [
            {**manifest_json(s.manifest), "shared": s.shared}
            for s in listing.files
            if not is_pack_name(s.manifest.name)
        ],
    }


def network_json(found: Sequence[NetworkFile]) -> dict[str, Any]:
    """Every file in the network with its holders (ls --all, the API's network scope); a
    folder's packs left out, as in `listing_json`."""
    return {
        "files": [
            {**manifest_json(f.manifest), "holders": list(f.holders)}
            for f in found
            if not is_pack_name(f.manifest.name)
        ]
    }


def entries_json(entries: Iterable[IndexEntry]) -> list[dict[str, Any]]:
    """Search results (search, the API's search); a folder's manifest found as its folder."""
    found = []
    for e in entries:
        shape: dict[str, Any] = {"name": e.name, "size": e.size, "sha256": e.sha256.hex()}
        folder = folder_of(e.name)
        if folder is not None:
            shape |= {"name": folder, "kind": "folder", "manifest_name": e.name}
        found.append(shape)
    return found


def folder_json(folder: Folder) -> dict[str, Any]:
    """A folder: its name, how many files, their bytes, and its entries."""
    return {
        "name": folder.name,
        "kind": "folder",
        "files": len(folder.files),
        "size": folder.size,
        "entries": [
            {
                "path": e.path,
                "type": e.kind,
                "mode": e.mode,
                "size": e.size,
                "id": e.id.hex() if e.id else None,
            }
            for e in folder.entries
        ],
    }


def folder_records(files: Iterable[dict[str, Any]]) -> list[str]:
    """The folders whose manifests a listing holds."""
    return [name for f in files if (name := folder_of(f["name"])) is not None]


def with_folders(
    files: list[dict[str, Any]], folders: dict[str, Folder | None]
) -> list[dict[str, Any]]:
    """A listing with each folder's manifest shown as its folder: its name, file count and
    total size (the manifest's own size when it could not be read now)."""
    shown = []
    for f in files:
        name = folder_of(f["name"])
        if name is None:
            shown.append(f)
            continue
        folder = folders.get(name)
        shown.append(
            {
                **f,
                "name": name,
                "kind": "folder",
                "manifest_name": f["name"],
                "files": None if folder is None else len(folder.files),
                "size": f["size"] if folder is None else folder.size,
            }
        )
    return shown
