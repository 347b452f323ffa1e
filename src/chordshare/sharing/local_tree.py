"""A folder's local end: the tree a put walks, and the paths a get writes, never through a
symbolic link nor outside the folder it saves to. Blocking file-system calls: the folder
client runs them in a thread."""

from __future__ import annotations

import os
import stat
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from chordshare.files.folders import BadFolder, Folder, FolderEntry, Found, check_walk
from chordshare.files.names import SEPARATOR, name_parts
from chordshare.sharing.chunking import file_sha256


def walk(root: Path) -> list[Found]:
    """Every file and folder under root (not root itself), by path, links never followed;
    BadFolder at a link, a special file or one entry too many (`folders.check_walk`)."""
    if root.is_symlink():
        raise BadFolder(f"{root} is a symbolic link: a folder is put without links")
    if not root.is_dir():
        raise BadFolder(f"{root}: no such folder")
    return check_walk(str(root), _found(root, ""))


def _found(folder: Path, prefix: str) -> Iterator[Found]:
    with os.scandir(folder) as listing:
        items = sorted(listing, key=lambda item: item.name)
    for item in items:
        path = prefix + item.name
        info = item.stat(follow_symlinks=False)
        mode = stat.S_IMODE(info.st_mode) & 0o777
        if stat.S_ISLNK(info.st_mode):
            yield Found(path, "symlink")
        elif stat.S_ISDIR(info.st_mode):
            yield Found(path, "dir", mode)
            yield from _found(Path(item.path), path + SEPARATOR)
        elif stat.S_ISREG(info.st_mode):
            yield Found(path, "file", mode, info.st_size)
        else:
            yield Found(path, "other")


@dataclass(frozen=True, slots=True)
class Plan:
    """Where each entry of a folder goes, and what a get found there already."""

    targets: dict[str, str]
    kept: frozenset[str] = frozenset()  # packed files there with their very bytes: skipped
    cut_short: frozenset[str] = frozenset()  # packed files there, shorter: an earlier get's?
    to_compare: frozenset[str] = frozenset()  # files of their own there, as long as theirs


def plan_targets(folder: Folder, dest: Path, force: bool) -> Plan:
    """Where each entry of folder is saved under dest, checked before anything is written:
    BadFolder when dest, or any folder on the way to an entry, is a symbolic link or a
    file. A file there already is replaced with `force` (never written through); without
    it, a get run again after one cut off goes on where that one stopped: a packed file
    with the folder's bytes is kept, one shorter is checked when its bytes come (`Plan`),
    and a file of its own as long as the folder's when its manifest is known; any other
    file is FileExistsError. Only `/`-separated parts that passed the name rule are
    joined, so no path leaves dest. Inside a folder that is not there yet nothing needs a
    look."""
    if dest.is_symlink():
        raise BadFolder(f"{dest} is a symbolic link: a folder is saved into a real folder")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a folder")
    # Plain strings, not Paths: a folder of many thousand files is joined and looked up
    # here once per part of each path, and a Path costs more to make than the join.
    top = str(dest)
    if not dest.exists():  # nothing inside to look at: every path passed the name rule
        return Plan({e.path: os.path.join(top, e.path) for e in folder.entries})
    absent: set[str] = set()
    checked: set[str] = {top}
    targets: dict[str, str] = {}
    there: list[FolderEntry] = []
    for entry in folder.entries:
        parts = name_parts(entry.path)
        place = top
        for depth, part in enumerate(parts):
            parent, place = place, os.path.join(place, part)
            last = depth == len(parts) - 1
            if place in checked and not last:
                continue
            kind = None if parent in absent else _kind(place)
            if kind == "link":
                raise BadFolder(f"{place} is a symbolic link: nothing of the folder is saved")
            if not last or entry.kind == "dir":
                if kind == "file":
                    raise BadFolder(f"{place} is a file where the folder has a folder")
                checked.add(place)
                if kind is None:
                    absent.add(place)
            elif kind == "dir":
                raise BadFolder(f"{place} is a folder where the folder has a file")
            elif kind is not None and not force:
                there.append(entry)
        targets[entry.path] = place
    return _sorted_out(targets, there)


def _sorted_out(targets: dict[str, str], there: list[FolderEntry]) -> Plan:
    """Which files already at their targets a get may keep or go on with (`plan_targets`)."""
    kept, cut_short, to_compare = set(), set(), set()
    for entry in there:
        place = targets[entry.path]
        size = os.stat(place).st_size
        if entry.pack is None and size == entry.size:
            to_compare.add(entry.path)
        elif entry.pack is not None and size < entry.size:
            cut_short.add(entry.path)
        elif entry.pack is not None and size == entry.size and file_sha256(place) == entry.sha256:
            kept.add(entry.path)
        else:
            raise FileExistsError(f"{place} exists: give --force to overwrite it")
    return Plan(targets, frozenset(kept), frozenset(cut_short), frozenset(to_compare))


def _kind(place: str) -> str | None:
    """What is at place, never following a link: None when nothing is."""
    try:
        mode = os.lstat(place).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "link"
    return "dir" if stat.S_ISDIR(mode) else "file"


def make_folders(folder: Folder, targets: dict[str, str], dest: Path) -> None:
    """The folders of the tree, each made once and without following a link
    (`plan_targets` checked the way)."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {
        targets[e.path] if e.kind == "dir" else os.path.dirname(targets[e.path])
        for e in folder.entries
    }
    for where in sorted(wanted):
        os.makedirs(where, exist_ok=True)


def set_modes(folder: Folder, targets: dict[str, str], kept: Container[str] = ()) -> None:
    """Each entry's mode bits, deepest first (a folder without write bits set last); of
    packed files only those `kept` from an earlier get (the others were written with
    theirs, `folder_packs`)."""
    entries = [e for e in folder.entries if e.pack is None or e.path in kept]
    for entry in sorted(entries, key=lambda e: e.path.count(SEPARATOR), reverse=True):
        os.chmod(targets[entry.path], entry.mode, follow_symlinks=False)
