"""A directory whose files a node shares in place (`--share DIR`), without copying them
into its store: the node serves their chunks straight from the files, and the ring holds
locator records that point at it.

Every regular file under the directory is shared, in subfolders too, under its path
relative to the directory with '/' between the parts (`photos/2024/a.jpg`). A symbolic link
is shared only when it leads to a regular file inside the directory (nothing outside it is
ever shared), and a linked folder is not entered (a link cannot make the walk loop). Files
whose names end in `.part` (downloads under way) and paths the name rule refuses are left
out, and so is the node's own data directory when it lies inside. A file is hashed once,
and again only when its size or modification time changes; a chunk is read only from the
very file that was hashed (same device and inode, size and modification time).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from chordshare.files.manifest import Manifest
from chordshare.files.names import SEPARATOR, BadName, check_new_name
from chordshare.sharing.chunking import build_manifest, chunk_size_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedFile:
    path: Path  # the file itself, links resolved: inside the shared directory
    manifest: Manifest
    size: int
    mtime_ns: int
    identity: tuple[int, int] = (0, 0)  # st_dev, st_ino of the file hashed


@dataclass(frozen=True, slots=True)
class _Found:
    name: str
    path: str  # resolved
    stat: os.stat_result


class SharedDirectory:
    def __init__(self, root: Path, chunk_size: int | None = None, skip: Path | None = None) -> None:
        if not root.is_dir():
            raise ValueError(f"--share {root}: not a directory")
        self.root = root
        self.chunk_size = chunk_size
        self.skip = os.path.realpath(skip) if skip is not None else None
        self._files: dict[str, SharedFile] = {}
        self._lock = threading.Lock()
        self._scanning = threading.Lock()  # one scan at a time: a file is hashed once

    def scan(self) -> list[SharedFile]:
        """Look at the directory again (blocking: run it in a thread)."""
        with self._scanning:
            found: dict[str, SharedFile] = {}
            for entry in self._walk():
                shared = self._look_at(entry)
                if shared is not None:
                    found[entry.name] = shared
            with self._lock:
                self._files = found
            return list(found.values())

    def _walk(self) -> list[_Found]:
        """The regular files under the directory that may be shared, by name."""
        top = os.path.realpath(self.root)
        found: list[_Found] = []
        folders: list[tuple[str, str]] = [(str(self.root), "")]  # (path, name prefix)
        while folders:
            folder, prefix = folders.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                log.debug("cannot list %r to share it: %s", folder, err)
                continue
            for entry in entries:
                name = prefix + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if os.path.realpath(entry.path) != self.skip:
                            folders.append((entry.path, name + SEPARATOR))
                        continue
                    if name.endswith(".part"):
                        continue
                    check_new_name(name)
                    real = os.path.realpath(entry.path)
                    if os.path.commonpath([top, real]) != top or real == top:
                        continue  # a link out of the directory
                    info = os.stat(real)
                except (BadName, OSError, ValueError):
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.append(_Found(name, real, info))
        return found

    def _look_at(self, entry: _Found) -> SharedFile | None:
        info = entry.stat
        identity = (info.st_dev, info.st_ino)
        with self._lock:
            known = self._files.get(entry.name)
        if known is not None and (known.size, known.mtime_ns, known.identity) == (
            info.st_size,
            info.st_mtime_ns,
            identity,
        ):
            return known
        path = Path(entry.path)
        try:
            chunk = self.chunk_size or chunk_size_for(info.st_size)
            manifest = build_manifest(path, entry.name, chunk, info.st_mtime)
        except OSError as err:
            log.warning("cannot share %r: %s", str(path), err)
            return None
        return SharedFile(path, manifest, info.st_size, info.st_mtime_ns, identity)

    def files(self) -> list[SharedFile]:
        with self._lock:
            return list(self._files.values())

    def named(self, name: str) -> SharedFile | None:
        with self._lock:
            return self._files.get(name)

    def by_sha256(self, sha256: bytes) -> SharedFile | None:
        with self._lock:
            return next((f for f in self._files.values() if f.manifest.sha256 == sha256), None)

    def read_chunk(self, manifest: Manifest, index: int) -> bytes:
        """Chunk `index` of a shared file, read from the file itself (blocking)."""
        with self._lock:
            shared = self._files.get(manifest.name)
        if shared is None or shared.manifest.sha256 != manifest.sha256:
            raise OSError(f"{manifest.name} is no longer shared")
        # The resolved path, its last part not followed: a link put in its place since the
        # scan is refused, and the file must be the one hashed.
        fd = os.open(shared.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            info = os.fstat(fd)
            if (info.st_size, info.st_mtime_ns, (info.st_dev, info.st_ino)) != (
                shared.size,
                shared.mtime_ns,
                shared.identity,
            ):
                raise OSError(f"{manifest.name} changed since it was shared")
            return os.pread(fd, manifest.chunk_length(index), index * manifest.chunk_size)
        finally:
            os.close(fd)
