"""A directory whose files a node shares in place (`--share DIR`), without copying them
into its store: the node serves their chunks straight from the files, and the ring holds
locator records that point at it.

Only regular files directly in the directory are shared, under their file names. A file
is hashed once and hashed again only when its size or modification time changes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from chordshare.files.manifest import Manifest
from chordshare.files.names import BadName, check_new_name
from chordshare.sharing.chunking import build_manifest, chunk_size_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedFile:
    path: Path
    manifest: Manifest
    size: int
    mtime_ns: int


class SharedDirectory:
    def __init__(self, root: Path, chunk_size: int | None = None) -> None:
        if not root.is_dir():
            raise ValueError(f"--share {root}: not a directory")
        self.root = root
        self.chunk_size = chunk_size
        self._files: dict[str, SharedFile] = {}
        self._lock = threading.Lock()

    def scan(self) -> list[SharedFile]:
        """Look at the directory again (blocking: run it in a thread)."""
        found: dict[str, SharedFile] = {}
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            try:
                check_new_name(entry.name)
                if not entry.is_file(follow_symlinks=True) or entry.name.endswith(".part"):
                    continue
                stat = entry.stat()
            except (BadName, OSError):
                continue
            with self._lock:
                known = self._files.get(entry.name)
            if known is not None and (known.size, known.mtime_ns) == (
                stat.st_size,
                stat.st_mtime_ns,
            ):
                found[entry.name] = known
                continue
            path = Path(entry.path)
            try:
                chunk = self.chunk_size or chunk_size_for(stat.st_size)
                manifest = build_manifest(path, entry.name, chunk, stat.st_mtime)
            except OSError as err:
                log.warning("cannot share %r: %s", str(path), err)
                continue
            found[entry.name] = SharedFile(path, manifest, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            self._files = found
        return list(found.values())

    def files(self) -> list[SharedFile]:
        with self._lock:
            return list(self._files.values())

    def by_sha256(self, sha256: bytes) -> SharedFile | None:
        with self._lock:
            return next((f for f in self._files.values() if f.manifest.sha256 == sha256), None)

    def read_chunk(self, manifest: Manifest, index: int) -> bytes:
        """Chunk `index` of a shared file, read from the file itself (blocking)."""
        with self._lock:
            shared = self._files.get(manifest.name)
        if shared is None or shared.manifest.sha256 != manifest.sha256:
            raise OSError(f"{manifest.name} is no longer shared")
        with shared.path.open("rb") as source:
            stat = os.fstat(source.fileno())
            if (stat.st_size, stat.st_mtime_ns) != (shared.size, shared.mtime_ns):
                raise OSError(f"{manifest.name} changed since it was shared")
            return os.pread(
                source.fileno(), manifest.chunk_length(index), index * manifest.chunk_size
            )
