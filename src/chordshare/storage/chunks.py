"""Content-addressed chunk files: a chunk's name is the SHA-256 of its bytes.

Identical content is stored once however many files share it. A chunk is checked against
its name before it is stored, and can be checked again when read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from chordshare.files.manifest import DIGEST_BYTES
from chordshare.storage.atomic import fsync_directory, write_atomically


class ChunkError(Exception):
    """A chunk is missing, or its bytes do not match its name."""


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class ChunkStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        self._unsynced: set[bytes] = set()
        self._lock = threading.Lock()
        self._clear_leftovers()

    def _clear_leftovers(self) -> None:
        """Temporary files of writes a crash interrupted: never visible, now deleted."""
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def path_for(self, digest: bytes) -> Path:
        if len(digest) != DIGEST_BYTES:
            raise ChunkError(f"a chunk name is {DIGEST_BYTES} bytes, got {len(digest)}")
        name = digest.hex()
        return self.root / name[:2] / name[2:]

    def has(self, digest: bytes) -> bool:
        return self.path_for(digest).exists()

    def put(
        self,
        data: bytes,
        expected: bytes | None = None,
        sync: bool = True,
        rewrite: bool = False,
    ) -> bytes:
        """Store a chunk; refuse it when it does not hash to `expected`. Returns its name.
        A chunk already stored is kept as it is, unless `rewrite`: then these bytes, just
        hashed, replace it (atomically), which also heals a copy damaged on disk.

        With sync=False the chunk is renamed into place without fsync, and `sync` must be
        called for it before anything that depends on it is committed: a file's chunks are
        then flushed together at its commit instead of one fsync pair per chunk.
        """
        digest = digest_of(data)
        if expected is not None and digest != expected:
            raise ChunkError(
                f"chunk does not match its hash: expected {expected.hex()}, got {digest.hex()}"
            )
        path = self.path_for(digest)
        if rewrite or not path.exists():
            if sync:
                write_atomically(path, (data,), tmp_dir=self.tmp)
            else:
                write_atomically(path, (data,), tmp_dir=self.tmp, durable=False)
                with self._lock:
                    self._unsynced.add(digest)
        return digest

    def sync(self, digests: Iterable[bytes]) -> None:
        """Make chunks stored with sync=False durable, with the directories naming them."""
        with self._lock:
            todo = [d for d in dict.fromkeys(digests) if d in self._unsynced]
        directories = set()
        for digest in todo:
            path = self.path_for(digest)
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                directories.add(path.parent)
        for directory in directories:
            fsync_directory(directory)
        with self._lock:
            self._unsynced.difference_update(todo)

    def get(self, digest: bytes, verify: bool = True) -> bytes:
        try:
            data = self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise ChunkError(f"chunk {digest.hex()} is not stored here") from None
        if verify and digest_of(data) != digest:
            raise ChunkError(f"chunk {digest.hex()} is corrupt on disk")
        return data

    def size_of(self, digest: bytes) -> int:
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def remove(self, digest: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(digest))

    def digests(self) -> list[bytes]:
        """Every chunk on disk (for repair and for accounting after a crash)."""
        found = []
        for sub in self.root.iterdir():
            if sub == self.tmp or not sub.is_dir() or len(sub.name) != 2:
                continue
            for entry in sub.iterdir():
                with contextlib.suppress(ValueError):
                    found.append(bytes.fromhex(sub.name + entry.name))
        return found
