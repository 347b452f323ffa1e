"""A folder's packs on the local disk (`files.packs`): laying small files end to end into a
pack before a put, and cutting a fetched pack back into files. Blocking file-system calls:
the folder client runs them in a thread."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from chordshare.files.folders import BadFolder, FolderEntry
from chordshare.files.packs import Slot

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_WRITE_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | _CLOEXEC


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
    """The bytes of a packed entry from the open pack file `pack`, checked against its
    SHA-256 (a folder manifest whose entry does not match its pack is refused)."""
    return checked(entry, os.pread(pack, entry.size, entry.offset))


def checked(entry: FolderEntry, data: bytes) -> bytes:
    """data, if it is the packed entry's bytes."""
    if len(data) != entry.size or hashlib.sha256(data).digest() != entry.sha256:
        raise BadFolder(f"{entry.path!r} does not match its SHA-256 in the folder's manifest")
    return data


def save_entry(data: bytes, target: Path, force: bool, mode: int = 0o600) -> None:
    """Write one file of a folder at target with its mode bits, never through a link
    (`local_tree` checked the folders on the way); an existing file is kept unless
    `force`."""
    flags = _WRITE_NEW if force else _WRITE_NEW | os.O_EXCL
    fd = os.open(target, flags, 0o600)
    try:
        os.fchmod(fd, mode)  # whatever the umask: the folder's own bits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def split_pack(
    pack_path: Path, entries: Sequence[FolderEntry], targets: dict[str, Path], force: bool
) -> None:
    """Every entry of one pack, cut out of the fetched pack, checked and saved."""
    fd = os.open(pack_path, os.O_RDONLY | _CLOEXEC)
    try:
        for entry in entries:
            save_entry(read_entry(fd, entry), targets[entry.path], force, entry.mode)
    finally:
        os.close(fd)
