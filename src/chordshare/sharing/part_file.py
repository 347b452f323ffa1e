"""The file a download writes into: `NAME.part`, resumed from, made final as `NAME`.

Every chunk is written at its offset once it matches its SHA-256 in the manifest, so the
file holds only verified bytes and a later download keeps them. The chunk hashes are the
whole file's check: the owner verified the file's SHA-256 against them before it published
the file, so bytes that match every chunk hash are the file (BitTorrent's pieces follow
from the info-hash the same way). A resumed .part file was written by an earlier download,
but a disk can damage what it stores: each chunk in it is hashed once more when it is
opened, and the ones that no longer match are fetched again.

Blocking calls: run them in threads. `write_checked` may run in several threads at once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from chordshare.files.manifest import Manifest
from chordshare.storage.atomic import fsync_directory

Bytes = bytes | bytearray | memoryview


class PartFile:
    """An open .part file for `manifest`'s file; `close` (or `finish`) closes it."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @classmethod
    def open(cls, path: Path, manifest: Manifest) -> tuple[PartFile, list[int]]:
        """Open (or create) the .part file and find the chunks it already holds (one
        thread hop for both, which matters when a download is one small chunk)."""
        part = cls(path, manifest)
        try:
            return part, part._resume_scan()
        except BaseException:
            part.close()
            raise

    def _resume_scan(self) -> list[int]:
        """Fix the file's size and return the chunks whose bytes match their hash, read
        one at a time (flat memory). A longer file is cut; a shorter one is extended
        (sparse) so every chunk has its place."""
        manifest, fd = self.manifest, self.fd
        existing = os.fstat(fd).st_size
        if existing > manifest.size:
            os.ftruncate(fd, manifest.size)
            existing = manifest.size
        have = []
        for index, digest in enumerate(manifest.chunks):
            offset = index * manifest.chunk_size
            length = manifest.chunk_length(index)
            if offset + length > existing:
                break  # chunks past the end were never written
            if hashlib.sha256(os.pread(fd, length, offset)).digest() == digest:
                have.append(index)
        if existing < manifest.size:
            os.ftruncate(fd, manifest.size)
        return have

    def write_checked(self, index: int, data: Bytes) -> bool:
        """Write chunk index if data matches its hash; False (nothing written) if not."""
        if hashlib.sha256(data).digest() != self.manifest.chunks[index]:
            return False
        self.write(data, index * self.manifest.chunk_size)
        return True

    def write(self, data: Bytes, offset: int) -> None:
        view = memoryview(data)
        while view:  # pwrite may write less than asked
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def flush(self) -> None:
        """Start the disk on what has landed so far, so that `finish` has little left."""
        os.fdatasync(self.fd)

    def finish(self, out: Path) -> None:
        """Flush and close the complete file, give it its name and make the rename
        durable (one thread hop for all of it)."""
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        os.replace(self.path, out)
        fsync_directory(out.parent)

    def close(self) -> None:
        os.close(self.fd)
