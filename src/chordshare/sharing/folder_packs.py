"""A folder's packs on the local disk (`files.packs`): laying small files end to end into a
pack before a put, and cutting a fetched pack back into files as its chunks land.
Blocking file-system calls: the folder client runs them in threads."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import stat
import threading
from collections.abc import Container, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from chordshare.files.folders import BadFolder, FolderEntry
from chordshare.files.manifest import Manifest
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


def umask() -> int | None:
    """The process's umask, read without changing it (Linux); None where it cannot be."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def save_entry(
    data: bytes, target: str | Path, force: bool, mode: int = 0o600, mask: int | None = None
) -> None:
    """Write one file of a folder at target with its mode bits, never through a link
    (`local_tree` checked the folders on the way); an existing file is kept unless
    `force`, and then replaced, not written into (its other hard links keep their bytes,
    and a read-only file is no obstacle)."""
    if force:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(target).st_mode):
                os.unlink(target)
    fd = os.open(target, _WRITE_NEW | os.O_EXCL, mode)
    try:
        if mask is None or mode & mask:  # whatever the umask (`mask`): the folder's own bits
            os.fchmod(fd, mode)
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
        with memoryview(self.held) as held:  # one copy a file, released before the trim
            while self.next < len(self.waiting):
                entry = self.waiting[self.next]
                begin, end = entry.offset - self.start, entry.offset + entry.size - self.start
                if end > len(held):
                    break
                done.append((entry, bytes(held[begin:end])))
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
    done: Sequence[tuple[FolderEntry, bytes]],
    targets: dict[str, str],
    force: bool,
    mask: int | None,
    cut_short: Container[str] = (),
) -> None:
    """Files a PackCutter finished, each saved where `local_tree.plan_targets` said, under
    the process's umask `mask` (`umask`). A file there already that `cut_short` names is
    overwritten if its bytes begin the file's (an earlier get was cut off while writing
    it), else FileExistsError."""
    for entry, data in done:
        target = targets[entry.path]
        replace = force
        if entry.path in cut_short and not force:
            if not _begins(data, target):
                raise FileExistsError(f"{target} exists: give --force to overwrite it")
            replace = True
        save_entry(data, target, replace, entry.mode, mask)


def _begins(data: bytes, target: str) -> bool:
    with open(target, "rb") as there:
        return data.startswith(there.read(len(data) + 1))


class PackSplitter:
    """A pack fetched straight into its files, never written whole (a download's
    `ChunkSink`): each chunk, from several threads in any order, is checked against the
    pack's manifest and cut in order, so a file is written as soon as the chunks that hold
    it are in. One thread of its own saves the files, in turn: files made at once in one
    folder by several threads wait on each other in the kernel. Holds chunks that came
    early (at most what the download has in flight) and files not saved yet."""

    def __init__(
        self,
        manifest: Manifest,
        entries: Sequence[FolderEntry],
        targets: dict[str, str],
        force: bool,
        cut_short: Container[str] = (),
    ) -> None:
        self.manifest = manifest
        self.cutter = PackCutter(entries)
        self.save = functools.partial(
            save_entries, targets=targets, force=force, mask=umask(), cut_short=cut_short
        )
        self.early: dict[int, bytes] = {}
        self.next_chunk = 0
        self.lock = threading.Lock()
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="chordshare-pack")
        self.saving: list[Future[None]] = []

    def write_checked(self, index: int, data: bytes | bytearray | memoryview) -> bool:
        if hashlib.sha256(data).digest() != self.manifest.chunks[index]:
            return False
        with self.lock:
            self.early[index] = bytes(data)
            done: list[tuple[FolderEntry, bytes]] = []
            while self.next_chunk in self.early:
                done += self.cutter.feed(self.early.pop(self.next_chunk))
                self.next_chunk += 1
            self._save(done)
        return True

    def flush(self) -> None:
        pass  # nothing is kept on disk to resume from: a pack is fetched again whole

    def finish(self, out: Path) -> None:
        """Once every chunk is in: every file saved, the first failure to save one raised;
        BadFolder if the pack ends before its files (a manifest that lied)."""
        with self.lock:
            if self.cutter.more and self.next_chunk == len(self.manifest.chunks):
                self._save(self.cutter.feed(b""))  # files of no bytes in a pack of none
            more, saving = self.cutter.more, list(self.saving)
        for future in saving:
            future.result()
        if more:
            raise BadFolder(f"{out.name} ends before the files the folder's manifest puts in it")

    def close(self) -> None:
        """Stop saving (what is under way ends first)."""
        self.writer.shutdown(wait=True, cancel_futures=True)

    def _save(self, done: list[tuple[FolderEntry, bytes]]) -> None:
        if done:
            self.saving.append(self.writer.submit(self.save, done))
