"""Folders on the network (`files.folders`): put a local tree, get one back, remove one,
read a folder's manifest. Every file goes through a FileClient, many at once: a folder of
small files is as many round trips as files, and only having many in flight keeps the
ring's nodes busy instead of waiting on each answer in turn."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chordshare.files.folders import (
    BadFolder,
    Folder,
    FolderEntry,
    Found,
    check_entries,
    check_folder_name,
    decode,
    encode,
    make_folder,
    member_name,
    record_name,
    removed_files,
    same_layout,
)
from chordshare.files.messages import FileError, Refusal
from chordshare.sharing.client import FileClient
from chordshare.sharing.download import DownloadError
from chordshare.sharing.local_tree import make_folders, plan_targets, set_modes, walk
from chordshare.transport.base import PeerError

T = TypeVar("T")
R = TypeVar("R")

# Files of a folder moved at once: enough to keep every holder of a small ring busy with
# small files, few enough that one client's connections and memory stay modest.
IN_FLIGHT = 48
_PLACEHOLDER_ID = bytes(32)


@dataclass(frozen=True, slots=True)
class FolderPut:
    folder: Folder
    unchanged: bool
    removed: int  # files of the folder's previous version no longer in it


@dataclass(frozen=True, slots=True)
class FolderGot:
    folder: Folder
    path: Path


async def each(items: Sequence[T], work: Callable[[T], Awaitable[R]], width: int) -> list[R]:
    """work(item) for every item, at most `width` at once, results in order; the first
    failure stops the rest and is raised as it is."""
    results: list[R | None] = [None] * len(items)
    queue = iter(range(len(items)))

    async def worker() -> None:
        for index in queue:
            results[index] = await work(items[index])

    workers = [asyncio.ensure_future(worker()) for _ in range(min(width, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results  # type: ignore[return-value]


class FolderClient:
    def __init__(self, files: FileClient, width: int = IN_FLIGHT) -> None:
        self.files = files
        self.width = width

    async def find(self, name: str) -> Folder | None:
        """The manifest of folder `name`, checked; None when there is no such folder."""
        try:
            found = await self.files.find(record_name(name))
        except FileError as err:
            if err.refusal is Refusal.NOT_FOUND:
                return None
            raise
        manifest = found.manifest
        if found.inline is not None and hashlib.sha256(found.inline[1]).digest() == (
            manifest.sha256
        ):
            data = found.inline[1]
        else:
            with tempfile.TemporaryDirectory(prefix="chordshare-folder-") as scratch:
                path = Path(scratch) / "manifest"
                await self.files.get(record_name(name), path, found=found)
                data = await asyncio.to_thread(path.read_bytes)
        return decode(data, name)

    async def put(
        self,
        root: Path,
        name: str,
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> FolderPut:
        """Publish the tree under root as folder `name`: every file under `name/path`,
        then the folder's manifest; with `replace`, the files of its previous version no
        longer in it are removed last. Bad input (a link, a name the rule refuses, two
        paths that collide, too many entries) is refused before a byte is sent."""
        check_folder_name(name)
        found = await asyncio.to_thread(walk, root)
        check_entries(name, [_placeholder(f) for f in found])
        old = await self.find(name)
        if old is not None and not replace and not same_layout(old, found):
            raise _exists(name)
        files = [f for f in found if f.kind == "file"]

        async def put_one(item: Found) -> FolderEntry:
            path = root / item.path
            outcome = await self.files.put(path, member_name(name, item.path), replace=replace)
            manifest = outcome.manifest
            if progress is not None:
                progress(manifest.size)
            return FolderEntry(item.path, "file", item.mode, manifest.size, manifest.id)

        put = await each(files, put_one, self.width)
        folders = [FolderEntry(f.path, "dir", f.mode) for f in found if f.kind == "dir"]
        folder = make_folder(name, put + folders)
        if old is not None and not replace and old != folder:
            raise _exists(name)
        outcome = await self.files.put_bytes(record_name(name), encode(folder), replace)
        gone = removed_files(old, folder)
        await each(gone, self._remove_file, self.width)
        return FolderPut(folder, outcome.unchanged and old == folder, len(gone))

    async def get(
        self,
        name: str,
        dest: Path,
        force: bool = False,
        folder: Folder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> FolderGot:
        """Save folder `name` as dest: each file as the folder's manifest names it (its
        manifest id checked), its mode bits, its empty folders. Every path is checked
        before the first is written (`local_tree.plan_targets`)."""
        folder = folder or await self.find(name)
        if folder is None:
            raise FileError(Refusal.NOT_FOUND, f"no folder named {name!r} in the network")
        targets = await asyncio.to_thread(plan_targets, folder, dest, force)
        await asyncio.to_thread(make_folders, folder, targets, dest)

        async def get_one(entry: FolderEntry) -> None:
            await self.fetch(folder, entry, targets[entry.path])
            if progress is not None:
                progress(entry.size)

        await each(folder.files, get_one, self.width)
        await asyncio.to_thread(set_modes, folder, targets)
        return FolderGot(folder, dest)

    async def fetch(self, folder: Folder, entry: FolderEntry, out: Path) -> None:
        """The file of `entry` into out, if it is still the file the folder names."""
        member = folder.member(entry)
        found = await self.files.find(member)
        if found.manifest.id != entry.id:
            raise FileError(
                Refusal.FAILED_PRECONDITION,
                f"{member!r} is not the file folder {folder.name!r} was published with "
                "(replaced or removed since): put the folder again",
            )
        await self.files.get(member, out, found=found)

    async def remove(self, name: str) -> Folder:
        """Remove folder `name`: its files, then its manifest (so a removal cut off is
        finished by running it again)."""
        folder = await self.find(name)
        if folder is None:
            raise FileError(Refusal.NOT_FOUND, f"no folder named {name!r} in the network")
        await each([folder.member(e) for e in folder.files], self._remove_file, self.width)
        await self.files.remove(record_name(name))
        return folder

    async def _remove_file(self, member: str) -> None:
        try:
            await self.files.remove(member)
        except FileError as err:
            if err.refusal is not Refusal.NOT_FOUND:
                raise

    async def summaries(self, names: Sequence[str]) -> dict[str, Folder | None]:
        """The manifests of the folders named (None for one that cannot be read now)."""

        async def one(name: str) -> Folder | None:
            try:
                return await self.find(name)
            except (FileError, BadFolder, PeerError, DownloadError, OSError):
                return None  # shown as a folder whose manifest could not be read now

        found = await each(list(names), one, 8)
        return dict(zip(names, found, strict=True))


def _placeholder(item: Found) -> FolderEntry:
    if item.kind == "dir":
        return FolderEntry(item.path, "dir", item.mode)
    return FolderEntry(item.path, "file", item.mode, item.size, _PLACEHOLDER_ID)


def _exists(name: str) -> FileError:
    return FileError(
        Refusal.ALREADY_EXISTS,
        f"folder {name!r} exists with other contents: give --replace to replace it",
    )
