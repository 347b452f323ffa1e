"""A folder's packs on the local disk (`files.packs`): laying small files end to end into a
pack before a put, and cutting a fetched pack back into files. Blocking file-system calls:
the folder client runs them in a thread."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from chordshare.files.folders import BadFolder, FolderEntry
from chordshare.files.packs import Slot

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_WRITE_NEW = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC


def write_pack(root: Path, slots: Sequence[Slot], out: Path) -> list[bytes]:
    """The files of slots, read from under root, laid end to end into `out`; the SHA-256
    of each. BadFolder if one changed size since the tree was walked (its offset would
    be wrong): the put is then started again by whoever runs it."""
    digests = []
    with out.open("wb") as pack:
        for slot in slots:
            path = root / slot.item.path
            data = _read_exactly(path, slot.item.size)
            pack.write(data)
            digests.append(hashlib.sha256(data).digest())
    return digests


def _read_exactly(path: Path, size: int) -> bytes:
    changed = BadFolder(f"{path} changed while the folder was being put: put it again")
    # Never through a link put in the file's place since the walk (ELOOP), nor waiting
    # on a FIFO put there for a writer (O_NONBLOCK, which a regular file ignores).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise changed from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device
        os.close(fd)
        raise changed
    with os.fdopen(fd, "rb") as source:
        data = source.read(size + 1)
    if len(data) != size:
        raise changed
    return data


def read_entry(pack: int, entry: FolderEntry) -> bytes:
    """The bytes of a packed entry from the open pack file `pack`. Not hashed again: every
    chunk of the pack was checked as it arrived against the pack's manifest, whose id the
    folder's manifest names, so its bytes are the ones published."""
    return whole(entry, os.pread(pack, entry.size, entry.offset))


def whole(entry: FolderEntry, data: bytes) -> bytes:
    """data, if it is as long as the packed entry (a pack shorter than its manifest said
    is refused, never saved as a file cut short)."""
    if len(data) != entry.size:
        raise BadFolder(f"{entry.path!r} lies past the end of its pack")
    return data


def save_entry(data: bytes, target: Path, force: bool, mode: int = 0o600) -> None:
    """Write one file of a folder at target with its mode bits, never through a link
    (`local_tree` checked the folders on the way); an existing file is kept unless
    `force`, and then replaced, not written into (its other hard links keep their bytes,
    and a read-only file is no obstacle)."""
    if force:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(target).st_mode):
                os.unlink(target)
    fd = os.open(target, _WRITE_NEW | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, mode)  # whatever the umask: the folder's own bits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class PackCutter:
    """Cuts a pack's bytes, fed in order as they arrive, into its packed files: each is
    handed on as soon as its last byte is in, so files are written while the rest of the
    pack is still on its way. Holds at most one file and one piece."""

    def __init__(self, entries: Sequence[FolderEntry]) -> None:
        self.waiting = sorted(entries, key=lambda e: e.offset)
        self.next = 0  # index in `waiting` of the next file to finish
        self.held = bytearray()
        self.start = 0  # offset in the pack of held[0]

    def feed(self, piece: bytes) -> list[tuple[FolderEntry, bytes]]:
        """The files `piece` completes, with their bytes."""
        self.held += piece
        done = []
        while self.next < len(self.waiting):
            entry = self.waiting[self.next]
            begin, end = entry.offset - self.start, entry.offset + entry.size - self.start
            if end > len(self.held):
                break
            done.append((entry, bytes(self.held[begin:end])))
            self.next += 1
        keep_from = len(self.held)
        if self.more:  # the files are apart (`folders.check_entries`): nothing before it is needed
            keep_from = min(keep_from, self.waiting[self.next].offset - self.start)
        del self.held[:keep_from]
        self.start += keep_from
        return done

    @property
    def more(self) -> bool:
        return self.next < len(self.waiting)


def save_entries(
    done: Sequence[tuple[FolderEntry, bytes]], targets: dict[str, Path], force: bool
) -> None:
    for entry, data in done:
        save_entry(data, targets[entry.path], force, entry.mode)


class PackSplitter:
    """A pack's files saved while its chunks land (`download`'s `landed`, from several
    threads, in any order): chunks are cut in order, so a file is written as soon as the
    chunks that hold it are in; files finished before their targets are known wait for
    `save_to`. Holds chunks that came early, at most what the download has in flight."""

    def __init__(self, entries: Sequence[FolderEntry], force: bool) -> None:
        self.cutter = PackCutter(entries)
        self.force = force
        self.early: dict[int, bytes] = {}
        self.next_chunk = 0
        self.targets: dict[str, Path] | None = None
        self.waiting: list[tuple[FolderEntry, bytes]] = []
        self.lock = threading.Lock()

    def landed(self, index: int, data: bytes | bytearray | memoryview) -> None:
        done: list[tuple[FolderEntry, bytes]] = []
        with self.lock:  # the cutting, in order; the saving, outside, in every thread
            self.early[index] = bytes(data)
            while self.next_chunk in self.early:
                done += self.cutter.feed(self.early.pop(self.next_chunk))
                self.next_chunk += 1
            targets = self.targets
            if targets is None:
                self.waiting += done
                return
        save_entries(done, targets, self.force)

    def save_to(self, targets: dict[str, Path]) -> None:
        """From now on files are saved at targets; those finished already, at once."""
        with self.lock:
            self.targets = targets
            waiting, self.waiting = self.waiting, []
        save_entries(waiting, targets, self.force)

    def finish(self, pack_path: Path) -> None:
        """Once the whole pack is at pack_path: the files no landed chunk finished (chunks
        a download resumed from an earlier try)."""
        with self.lock:
            rest = self.cutter.waiting[self.cutter.next :]
            self.cutter.next = len(self.cutter.waiting)
        if rest:
            assert self.targets is not None
            split_pack(pack_path, rest, self.targets, self.force)


def split_pack(
    pack_path: Path, entries: Sequence[FolderEntry], targets: dict[str, Path], force: bool
) -> None:
    """Every entry of one pack, cut out of the fetched pack and saved."""
    fd = os.open(pack_path, os.O_RDONLY | _CLOEXEC)
    try:
        for entry in entries:
            save_entry(read_entry(fd, entry), targets[entry.path], force, entry.mode)
    finally:
        os.close(fd)
