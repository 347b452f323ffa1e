"""Folders on the network (`files.folders`): put a local tree, get one back, remove one,
read a folder's manifest. Small files go as packs (`files.packs`), each put and got like
one large file and cut apart locally (`folder_packs`); larger files are puts and gets of
their own, several at once through the same FileClient."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chordshare.files.folders import (
    BadFolder,
    Folder,
    FolderEntry,
    Found,
    Pack,
    check_entries,
    check_folder_name,
    decode,
    encode,
    folder_of,
    make_folder,
    member_name,
    record_name,
    removed_files,
    same_layout,
    stored_names,
)
from chordshare.files.links import Link
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import SEPARATOR
from chordshare.files.packs import Slot, pack_name, plan_packs
from chordshare.sharing.chunking import file_sha256
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.download import DownloadError, InMemory
from chordshare.sharing.folder_packs import PackSplitter, save_entry, whole, write_pack
from chordshare.sharing.local_tree import (
    Plan,
    make_folders,
    plan_targets,
    set_modes,
    walk,
)
from chordshare.sharing.ranges import stream_span
from chordshare.transport.base import PeerError
from chordshare.transport.files import exact_fetcher

T = TypeVar("T")
R = TypeVar("R")

# Files of their own moved at once: enough to keep every holder of a small ring busy,
# few enough that one client's connections and memory stay modest.
IN_FLIGHT = 48
# Packs moved at once: each is a large file that already keeps its holders busy.
PACKS_IN_FLIGHT = 2
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
        return await self._read(found, name)

    async def find_linked(self, link: Link) -> Folder:
        """The very version of a folder a link to its manifest names (`faces.linking`),
        while a holder keeps it; BadFolder for a link to anything else."""
        name = folder_of(link.name)
        if name is None:
            raise BadFolder(f"{link.name!r} is a file, not a folder")
        return await self._read(await self.files.find_link(link), name, exact=True)

    async def _read(self, found: NetworkFile, name: str, exact: bool = False) -> Folder:
        """Folder `name` from the manifest file found; BadFolder if it is not one."""
        held = InMemory(found.manifest)  # a few megabytes at most (`folders.MAX_ENTRIES`)
        stored = record_name(name)
        await self.files.get(stored, Path(stored), found=found, exact=exact, sink=held)
        return decode(bytes(held.data), name)

    async def put(
        self,
        root: Path,
        name: str,
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
        found: Sequence[Found] | None = None,
    ) -> FolderPut:
        """Publish the tree under root as folder `name` (`found`: its walk, if made
        already): its packs and files, then the folder's manifest; with `replace`, the
        files of its previous version no longer in it are removed last. Bad input (a
        link, a name the rule refuses, two paths that collide, too many entries) is
        refused before a byte is sent."""
        check_folder_name(name)
        if found is None:
            found = await asyncio.to_thread(walk, root)
        check_entries(name, [_placeholder(f) for f in found])
        old = await self.find(name)
        if old is not None and not replace and not same_layout(old, found):
            raise _exists(name)
        plan = plan_packs(found)

        async def put_one(item: Found) -> FolderEntry:
            path = root / item.path
            outcome = await self.files.put(path, member_name(name, item.path), replace=replace)
            manifest = outcome.manifest
            if progress is not None:
                progress(manifest.size)
            return FolderEntry(item.path, "file", item.mode, manifest.size, manifest.id)

        async def put_pack(index: int) -> tuple[Pack, list[FolderEntry]]:
            slots = plan.packs[index]
            with tempfile.TemporaryDirectory(prefix="chordshare-pack-") as scratch:
                local = Path(scratch) / "pack"
                digests = await asyncio.to_thread(write_pack, root, slots, local)
                try:
                    outcome = await self.files.put(
                        local, pack_name(name, index), replace=replace, progress=progress
                    )
                except FileError as err:
                    if err.refusal is Refusal.ALREADY_EXISTS:
                        raise _exists(name) from None
                    raise
            return Pack(outcome.manifest.id, outcome.manifest.size), [
                _packed(slot, index, digest) for slot, digest in zip(slots, digests, strict=True)
            ]

        alone = await each(plan.alone, put_one, self.width)
        packed = await each(range(len(plan.packs)), put_pack, PACKS_IN_FLIGHT)
        entries = alone + [e for _, pack_entries in packed for e in pack_entries]
        entries += [FolderEntry(f.path, "dir", f.mode) for f in found if f.kind == "dir"]
        folder = make_folder(name, entries, [pack for pack, _ in packed])
        if old is not None and not replace and old != folder:
            raise _exists(name)
        outcome = await self.files.put_bytes(record_name(name), encode(folder), replace)
        await each(removed_files(old, folder), self._remove_file, self.width)
        dropped = len(_paths(old) - _paths(folder)) if old is not None else 0
        return FolderPut(folder, outcome.unchanged and old == folder, dropped)

    async def get(
        self,
        name: str,
        dest: Path,
        force: bool = False,
        folder: Folder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> FolderGot:
        """Save folder `name` as dest: each file as the folder's manifest names it (its
        pack's or its own manifest id checked), its mode bits, its empty folders. Every
        path is checked before the first is written (`local_tree.plan_targets`); files an
        earlier get cut off left there are kept or gone on with, and a pack all of whose
        files are there already is not fetched. Each pack is cut apart as it comes."""
        folder = folder or await self.find(name)
        if folder is None:
            raise FileError(Refusal.NOT_FOUND, f"no folder named {name!r} in the network")
        plan = await asyncio.to_thread(_planned, folder, dest, force)
        packed = _by_pack(folder, skip=plan.kept)

        async def get_pack(index: int) -> None:
            found = await self.find_pack(folder, index)
            splitter = PackSplitter(
                found.manifest, packed[index], plan.targets, force, plan.cut_short
            )
            try:
                await self.files.get(
                    folder.pack_name(index),
                    Path(folder.pack_name(index)),
                    progress,
                    found=found,
                    exact=True,
                    sink=splitter,
                )
            finally:
                await asyncio.to_thread(splitter.close)

        async def get_one(entry: FolderEntry) -> None:
            target = Path(plan.targets[entry.path])
            if entry.path in plan.to_compare:
                member = folder.member(entry)
                found = await self._exactly(folder, entry.id, member)
                if await asyncio.to_thread(file_sha256, target) != found.manifest.sha256:
                    raise FileExistsError(f"{target} exists: give --force to overwrite it")
            else:
                await self.fetch(folder, entry, target)
            if progress is not None:
                progress(entry.size)

        await each(sorted(packed), get_pack, PACKS_IN_FLIGHT)
        await each([e for e in folder.files if e.pack is None], get_one, self.width)
        await asyncio.to_thread(set_modes, folder, plan.targets, plan.kept)
        return FolderGot(folder, dest)

    async def fetch(self, folder: Folder, entry: FolderEntry, out: Path) -> dict[str, int]:
        """The file of `entry` into out, if it is still the file the folder names; a
        packed file is the part of its pack that holds it, nothing more. Returns the bytes
        each holder served."""
        if entry.pack is not None:
            data, served = await self.packed_bytes(folder, entry)
            part = out.with_name(out.name + ".part")
            await asyncio.to_thread(save_entry, data, part, True, entry.mode)
            await asyncio.to_thread(os.replace, part, out)
            return served
        member = folder.member(entry)
        found = await self._exactly(folder, entry.id, member)
        return (await self.files.get(member, out, found=found, exact=True)).sources

    async def packed_bytes(
        self, folder: Folder, entry: FolderEntry, found: NetworkFile | None = None
    ) -> tuple[bytes, dict[str, int]]:
        """A packed file's bytes, from only the chunks of its pack that hold them (each
        checked against the pack's manifest, `ranges`); and the bytes of chunks each holder
        served. `found`: its pack, found already (`find_pack`)."""
        found = found or await self.find_pack(folder, entry.pack or 0)
        fetch = exact_fetcher(self.files.peers, found.manifest.id)
        served: dict[str, int] = defaultdict(int)

        async def counted(
            holder: str, digest: bytes, indexes: Sequence[int]
        ) -> AsyncIterator[tuple[int, bytes]]:
            async for index, chunk in fetch(holder, digest, indexes):
                served[holder] += len(chunk)
                yield index, chunk

        data = bytearray()
        span = stream_span(
            found.manifest, found.holders, counted, entry.offset, entry.offset + entry.size
        )
        async for piece in span:
            data += piece
        return whole(entry, bytes(data)), dict(served)

    async def find_pack(self, folder: Folder, index: int) -> NetworkFile:
        """Where the very pack the folder's manifest names can be had (a version kept
        after a replace too: `storage.retired`)."""
        return await self._exactly(folder, folder.packs[index].id, folder.pack_name(index))

    async def _exactly(self, folder: Folder, manifest_id: bytes, name: str) -> NetworkFile:
        """The very bytes the folder's manifest names under `name`: its newest version, or
        one its holders keep after a replace (`storage.retired`) while it is a link's."""
        try:
            return await self.files.find_link(Link(manifest_id, name, ()))
        except FileError as err:
            if err.refusal is Refusal.NOT_FOUND:
                raise _changed(folder) from None
            raise

    async def fetch_pack(self, folder: Folder, index: int, scratch: Path) -> Path:
        """Pack `index` of folder, whole, into a file in scratch."""
        found = await self.find_pack(folder, index)
        local = scratch / f"pack-{index}"
        await self.files.get(folder.pack_name(index), local, found=found, exact=True)
        return local

    async def find_path(self, name: str) -> tuple[Folder, FolderEntry] | None:
        """The folder and entry of `name` when it is a path inside a folder (`NAME/a/b`:
        folder `NAME/a` or `NAME`, nearest first); None when no folder holds it."""
        parts = name.split(SEPARATOR)
        for depth in range(len(parts) - 1, 0, -1):
            try:
                folder = await self.find(SEPARATOR.join(parts[:depth]))
            except BadFolder:
                continue
            if folder is not None:
                entry = folder.entry(SEPARATOR.join(parts[depth:]))
                if entry is not None:
                    return folder, entry
        return None

    async def remove(self, name: str) -> Folder:
        """Remove folder `name`: its packs and files, then its manifest (so a removal cut
        off is finished by running it again)."""
        folder = await self.find(name)
        if folder is None:
            raise FileError(Refusal.NOT_FOUND, f"no folder named {name!r} in the network")
        await each(stored_names(folder), self._remove_file, self.width)
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


def _planned(folder: Folder, dest: Path, force: bool) -> Plan:
    """Where each entry goes, checked, and the folders made (`local_tree`)."""
    plan = plan_targets(folder, dest, force)
    make_folders(folder, plan.targets, dest)
    return plan


def _paths(folder: Folder) -> set[str]:
    return {e.path for e in folder.files}


def _by_pack(folder: Folder, skip: Container[str] = ()) -> dict[int, list[FolderEntry]]:
    """The packed files of each pack, but those to `skip`; no pack all of whose are."""
    packed: dict[int, list[FolderEntry]] = defaultdict(list)
    for entry in folder.files:
        if entry.pack is not None and entry.path not in skip:
            packed[entry.pack].append(entry)
    return packed


def _packed(slot: Slot, pack: int, digest: bytes) -> FolderEntry:
    item = slot.item
    return FolderEntry(
        item.path, "file", item.mode, item.size, pack=pack, offset=slot.offset, sha256=digest
    )


def _changed(folder: Folder) -> FileError:
    return FileError(
        Refusal.FAILED_PRECONDITION,
        f"folder {folder.name!r} changed since this version was published: its files "
        "were replaced or removed, and no holder keeps these bytes any more; get it again",
    )


def _placeholder(item: Found) -> FolderEntry:
    if item.kind == "dir":
        return FolderEntry(item.path, "dir", item.mode)
    return FolderEntry(item.path, "file", item.mode, item.size, _PLACEHOLDER_ID)


def _exists(name: str) -> FileError:
    return FileError(
        Refusal.ALREADY_EXISTS,
        f"folder {name!r} exists with other contents: give --replace to replace it",
    )
