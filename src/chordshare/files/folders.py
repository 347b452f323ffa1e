"""Folders: a directory tree published as one unit.

A folder NAME is ordinary files in the network. Its small files travel in packs
(`files.packs`), each stored under `NAME.chordshare-pack-<n>`; a larger file is a file of
its own under `NAME/its/path`, on the key of that name. The **folder manifest** lists
every entry: its path relative to the folder, file or folder, its mode bits, and for a
file its size and where its bytes are: the id of its own manifest (`Manifest.id`: the
exact bytes), or its pack, offset and SHA-256; and the id and size of every pack. It is
stored as an ordinary file too, under `NAME.chordshare-folder` (the name marks it, so a
listing tells a folder from a file without fetching anything), and its bytes begin with
`MAGIC` then JSON (so a file that only happens to carry the suffix is never read as a
folder). Manifests that begin with `MAGIC_V1` (every file on its own) are read too.

Paths follow the name rule (`files.names`): relative, `/` between parts, none empty, `.`
or `..`, no backslash; so a folder manifest can only name paths inside the folder it is
saved to. Two entries may not have the same path once normalised (Unicode NFC: `é` typed
two ways is one file on most disks), nor a file be a folder of another entry's path. A
folder has at most `MAX_ENTRIES` entries. Decisions only: the I/O is
`sharing.folder_client`.
"""

from __future__ import annotations

import itertools
import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from chordshare.files.names import MAX_NAME_BYTES, SEPARATOR, BadName, check_new_name
from chordshare.files.packs import LAST_PACK, PACK_SUFFIX, SMALL_FILE, is_pack_name, pack_name

FOLDER_SUFFIX = ".chordshare-folder"
MAGIC = b"chordshare folder 2\n"
MAGIC_V1 = b"chordshare folder 1\n"
# Entries (files and folders) of one folder. Its manifest is then a few megabytes at most,
# fetched whole before any file; a tree larger than that is better published as several.
MAX_ENTRIES = 50_000
MODE_BITS = 0o777  # permission bits kept: setuid, setgid and sticky are never restored
ID_BYTES = 32

Kind = Literal["file", "dir"]


class BadFolder(ValueError):
    """A folder that cannot be published or saved; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class FolderEntry:
    """One path of a folder: a file or a folder (`dir`). A file is its size and either the
    id of its own manifest, or its place in a pack (`pack`, `offset`) and its SHA-256."""

    path: str
    kind: Kind
    mode: int
    size: int = 0
    id: bytes = b""
    pack: int | None = None
    offset: int = 0
    sha256: bytes = b""


@dataclass(frozen=True, slots=True)
class Pack:
    """One pack of a folder: the id of its manifest (its exact bytes) and its size."""

    id: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder manifest: the folder's name, its entries sorted by path, and its packs."""

    name: str
    entries: tuple[FolderEntry, ...]
    packs: tuple[Pack, ...] = ()

    @property
    def files(self) -> tuple[FolderEntry, ...]:
        return tuple(e for e in self.entries if e.kind == "file")

    @property
    def size(self) -> int:
        """The bytes of all its files."""
        return sum(e.size for e in self.files)

    def member(self, entry: FolderEntry) -> str:
        """The name the file of `entry` is stored under, when it is a file of its own."""
        return member_name(self.name, entry.path)

    def pack_name(self, index: int) -> str:
        return pack_name(self.name, index)

    def entry(self, path: str) -> FolderEntry | None:
        return next((e for e in self.entries if e.path == path), None)


def record_name(name: str) -> str:
    """The name a folder's manifest is stored under."""
    return name + FOLDER_SUFFIX


def folder_of(stored: str) -> str | None:
    """The folder a stored name is the manifest of, or None for an ordinary file."""
    if stored.endswith(FOLDER_SUFFIX) and len(stored) > len(FOLDER_SUFFIX):
        return stored[: -len(FOLDER_SUFFIX)]
    return None


def check_plain_name(name: str) -> str:
    """A name a file put on its own may take: a new name (`files.names`) that is not kept
    for a folder's manifest or one of its packs, which only a folder's put writes; else
    BadName."""
    check_new_name(name)
    if folder_of(name) is not None:
        raise BadName(f"names ending in {FOLDER_SUFFIX} are kept for folders' manifests", name)
    if is_pack_name(name):
        raise BadName(f"names ending in {PACK_SUFFIX}<n> are kept for folders' packs", name)
    return name


def check_folder_name(name: str) -> str:
    """A new folder's name: a new name whose manifest's and packs' names fit the name rule
    too."""
    folder_name(name)
    try:
        check_new_name(pack_name(name, LAST_PACK))
    except BadName as err:
        raise BadFolder(f"folder name {name!r} is too long for its packs: {err.problem}") from None
    return name


def folder_name(name: str) -> str:
    """A name a folder may be stored under (to find or remove it): a new name whose
    manifest's name fits the name rule too. Folders stored before packs had no packs'
    names to fit, so a longer name than a new folder may have is found."""
    check_new_name(name)
    try:
        check_new_name(record_name(name))
    except BadName as err:
        raise BadFolder(f"folder name {name!r} is too long: {err.problem}") from None
    return name


# The longest name a new folder may have (its packs' names are the longest it needs).
MAX_FOLDER_NAME_BYTES = MAX_NAME_BYTES - len(pack_name("", LAST_PACK).encode())


def member_name(folder: str, path: str) -> str:
    """`NAME/path`: where the file at `path` of folder NAME is stored."""
    return folder + SEPARATOR + path


def check_path(path: str) -> str:
    """A path inside a folder: relative, no `.` or `..` part, no backslash (`files.names`)."""
    try:
        return check_new_name(path)
    except BadName as err:
        raise BadFolder(f"path {path!r} in a folder: {err.problem}") from None


def check_entries(
    name: str, entries: Sequence[FolderEntry], packs: Sequence[Pack] = ()
) -> tuple[FolderEntry, ...]:
    """The entries of folder `name`, sorted by path, when they make a folder that can be
    saved anywhere, each packed file inside its pack; else BadFolder saying which entry
    is wrong."""
    if len(entries) > MAX_ENTRIES:
        raise BadFolder(
            f"folder {name!r} has {len(entries)} entries; a folder holds at most "
            f"{MAX_ENTRIES} (publish its subfolders as folders of their own)"
        )
    seen: dict[str, FolderEntry] = {}
    for entry in entries:
        check_path(entry.path)
        # The folder's name and the path passed the rule: only their length together is left.
        member = member_name(name, entry.path)
        if len(member.encode()) > MAX_NAME_BYTES:
            raise BadFolder(f"{member!r}: a file name is at most {MAX_NAME_BYTES} bytes")
        if entry.kind not in ("file", "dir"):
            raise BadFolder(f"{entry.path!r}: an entry is a file or a folder, not {entry.kind!r}")
        if not 0 <= entry.mode <= MODE_BITS:
            raise BadFolder(f"{entry.path!r}: mode {entry.mode:o} is not permission bits")
        if entry.kind == "file":
            _check_file(entry, packs)
        key = unicodedata.normalize("NFC", entry.path)
        if key in seen:
            raise BadFolder(f"{entry.path!r} and {seen[key].path!r}: two entries of one path")
        seen[key] = entry
    _check_apart(entries)
    files = {key for key, entry in seen.items() if entry.kind == "file"}
    for key, entry in seen.items():
        cut = key.find(SEPARATOR)
        while cut != -1:  # every folder on the way to it
            if key[:cut] in files:
                parent = seen[key[:cut]]
                raise BadFolder(f"{parent.path!r} is a file and {entry.path!r} is inside it")
            cut = key.find(SEPARATOR, cut + 1)
    return tuple(sorted(entries, key=attrgetter("path")))


def _check_file(entry: FolderEntry, packs: Sequence[Pack]) -> None:
    if entry.size < 0:
        raise BadFolder(f"{entry.path!r}: a file's size is not negative")
    if entry.pack is None:
        if len(entry.id) != ID_BYTES:
            raise BadFolder(f"{entry.path!r}: a file needs a 32-byte manifest id or a pack")
        return
    if not 0 <= entry.pack < len(packs) or len(entry.sha256) != ID_BYTES:
        raise BadFolder(f"{entry.path!r}: a packed file needs one of the packs and a SHA-256")
    if entry.size > SMALL_FILE:  # a reader may hold a packed file whole in memory
        raise BadFolder(f"{entry.path!r}: a packed file is at most {SMALL_FILE} bytes")
    if entry.offset < 0 or entry.offset + entry.size > packs[entry.pack].size:
        raise BadFolder(f"{entry.path!r}: its bytes lie outside pack {entry.pack}")


def _check_apart(entries: Sequence[FolderEntry]) -> None:
    """No two packed files share a byte of their pack."""
    packed = sorted((e.pack, e.offset, e.size, e.path) for e in entries if e.pack is not None)
    for (pack, offset, size, path), (other, start, _, then) in itertools.pairwise(packed):
        if pack == other and offset + size > start:
            raise BadFolder(f"{path!r} and {then!r} overlap in pack {pack}")


def make_folder(name: str, entries: Sequence[FolderEntry], packs: Sequence[Pack] = ()) -> Folder:
    """A folder manifest, checked; `name` is one a folder may be stored under (a new
    folder's put checks it against the longer rule first: `check_folder_name`)."""
    for pack in packs:
        if len(pack.id) != ID_BYTES or pack.size < 0:
            raise BadFolder(f"folder {name!r}: a pack needs a 32-byte manifest id and a size")
    return Folder(folder_name(name), check_entries(name, entries, packs), tuple(packs))


def encode(folder: Folder) -> bytes:
    """The bytes stored under `record_name(folder.name)`."""
    body = {
        "name": folder.name,
        "packs": [{"id": p.id.hex(), "size": p.size} for p in folder.packs],
        "entries": [_entry_json(e) for e in folder.entries],
    }
    return MAGIC + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _entry_json(entry: FolderEntry) -> dict[str, Any]:
    shape: dict[str, Any] = {"path": entry.path, "type": entry.kind, "mode": entry.mode}
    if entry.kind == "file" and entry.pack is None:
        shape |= {"size": entry.size, "id": entry.id.hex()}
    elif entry.kind == "file":
        shape |= {
            "size": entry.size,
            "pack": entry.pack,
            "offset": entry.offset,
            "sha256": entry.sha256.hex(),
        }
    return shape


def is_folder_bytes(data: bytes) -> bool:
    return data.startswith((MAGIC, MAGIC_V1))


def decode(data: bytes, name: str) -> Folder:
    """The folder manifest of folder `name` from its bytes; BadFolder for anything that is
    not one, or names a path outside the folder, twice, or through a file."""
    if not is_folder_bytes(data):
        raise BadFolder(f"{name!r} is not a chordshare folder")
    try:
        body = json.loads(data[len(MAGIC) :])  # both magics are as long
        if body["name"] != name:
            raise BadFolder(f"the manifest of folder {name!r} names folder {body['name']!r}")
        raw = body["entries"]
        if not isinstance(raw, list):
            raise TypeError("entries must be a list")
        if len(raw) > MAX_ENTRIES:
            raise BadFolder(
                f"folder {name!r} has {len(raw)} entries; a folder holds at most {MAX_ENTRIES}"
            )
        entries = [_entry(e) for e in raw]
        packs = [Pack(bytes.fromhex(p["id"]), _number(p["size"])) for p in body.get("packs", [])]
    # RecursionError: JSON nested deeper than the parser goes, which anyone may store.
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        if isinstance(err, BadFolder):
            raise
        raise BadFolder(f"the manifest of folder {name!r} is malformed: {err}") from None
    return make_folder(name, entries, packs)


def _number(value: Any) -> int:
    if type(value) is not int:  # bool is an int to isinstance
        raise TypeError("sizes, offsets, packs and modes must be numbers")
    return value


def _entry(raw: dict[str, Any]) -> FolderEntry:
    path, kind, mode = raw["path"], raw["type"], _number(raw["mode"])
    if not isinstance(path, str):
        raise TypeError("path must be text")
    if kind != "file":
        return FolderEntry(path, kind, mode)
    size = _number(raw["size"])
    if "pack" in raw:
        pack, offset = _number(raw["pack"]), _number(raw["offset"])
        return FolderEntry(
            path, "file", mode, size, pack=pack, offset=offset, sha256=bytes.fromhex(raw["sha256"])
        )
    return FolderEntry(path, "file", mode, size, bytes.fromhex(raw["id"]))


@dataclass(frozen=True, slots=True)
class Found:
    """What a walk of a local tree met at one path (`sharing.folder_client` walks)."""

    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    mode: int = 0
    size: int = 0


def check_walk(root: str, found: Iterable[Found]) -> list[Found]:
    """The files and folders of a local tree to publish; BadFolder at its first symbolic
    link or special file (a link could name anything outside the tree) and at the first
    entry past MAX_ENTRIES."""
    kept: list[Found] = []
    for item in found:
        if item.kind == "symlink":
            raise BadFolder(f"{root}/{item.path} is a symbolic link: a folder is put without links")
        if item.kind == "other":
            raise BadFolder(f"{root}/{item.path} is not a regular file or a folder")
        kept.append(item)
        if len(kept) > MAX_ENTRIES:
            raise BadFolder(
                f"{root} has more than {MAX_ENTRIES} files and folders; a folder holds at "
                f"most {MAX_ENTRIES} (publish its subfolders as folders of their own)"
            )
    return kept


def removed_files(old: Folder | None, new: Folder) -> list[str]:
    """The names of the files a replace of `old` by `new` removes: old files of their own
    that are not files of their own in `new`, and old packs past `new`'s last."""
    if old is None:
        return []
    kept = {e.path for e in new.files if e.pack is None}
    alone = [old.member(e) for e in old.files if e.pack is None and e.path not in kept]
    return alone + [old.pack_name(i) for i in range(len(new.packs), len(old.packs))]


def stored_names(folder: Folder) -> list[str]:
    """Every name a folder is stored under but its manifest's: its packs, its own files."""
    packs = [folder.pack_name(i) for i in range(len(folder.packs))]
    return packs + [folder.member(e) for e in folder.files if e.pack is None]


def same_layout(old: Folder, found: Sequence[Found]) -> bool:
    """Whether a local tree has the paths, kinds and sizes of a published folder: a put
    without replace of anything else is refused before a byte is sent."""
    have = {(e.path, e.kind, e.size if e.kind == "file" else 0) for e in old.entries}
    walk = {(f.path, f.kind, f.size if f.kind == "file" else 0) for f in found}
    return have == walk
