"""A node's store: chunks and catalog together, with a quota on stored bytes.

Chunks up to SMALL_CHUNK bytes live in the catalog itself, written in the same transaction
as the file that uses them (one fsync for a small file); larger ones are files of their own,
flushed together when their file is committed. Until then a small chunk is held in memory
(staged), so a put that fails leaves nothing of it behind.
"""

from __future__ import annotations

import threading
from pathlib import Path

from chordshare.storage.catalog import Catalog, Manifest
from chordshare.storage.chunks import ChunkError, ChunkStore, digest_of

SMALL_CHUNK = 64 * 1024  # chunks up to this size live in the catalog


class QuotaExceeded(Exception):
    """Storing this would take the node past its --max-store quota."""


class IncompleteFile(Exception):
    """A manifest was committed before all of its chunks were stored."""


class NodeStore:
    def __init__(
        self, data_dir: Path, max_bytes: int | None = None, small_chunk: int = SMALL_CHUNK
    ) -> None:
        self.data_dir = data_dir
        self.max_bytes = max_bytes
        self.small_chunk = small_chunk
        self.chunks = ChunkStore(data_dir / "chunks")
        self.catalog = Catalog(data_dir / "catalog.sqlite3")
        self._pending = 0  # bytes of chunks stored for files not committed yet
        self._staged: dict[bytes, bytes] = {}  # small chunks of puts not committed yet
        self._lock = threading.Lock()
        self.collect_garbage()

    def used_bytes(self) -> int:
        return self.catalog.stored_bytes() + self._pending

    def put_chunk(self, data: bytes, expected: bytes | None = None) -> bytes:
        """Store one chunk of a file being written (checked against `expected`)."""
        with self._lock:
            if self.max_bytes is not None and self.used_bytes() + len(data) > self.max_bytes:
                raise QuotaExceeded(
                    f"storing {len(data)} more bytes would pass this node's quota of "
                    f"{self.max_bytes} bytes ({self.used_bytes()} used)"
                )
            fresh = expected is None or not self.has_chunk(expected)
            if len(data) <= self.small_chunk:
                digest = self._check(data, expected)
                if fresh and digest not in self._staged:
                    self._staged[digest] = data
                    self._pending += len(data)
                return digest
            if fresh:
                self._pending += len(data)  # reserved before the write, outside the lock
        try:
            # Not flushed one by one: commit flushes a file's chunks together.
            return self.chunks.put(data, expected, sync=False)
        except BaseException:
            if fresh:
                with self._lock:
                    self._pending -= len(data)
            raise

    @staticmethod
    def _check(data: bytes, expected: bytes | None) -> bytes:
        digest = digest_of(data)
        if expected is not None and digest != expected:
            raise ChunkError(
                f"chunk does not match its hash: expected {expected.hex()}, got {digest.hex()}"
            )
        return digest

    def has_chunk(self, digest: bytes) -> bool:
        """Whether the chunk is here: staged, in the catalog or on disk."""
        return (
            digest in self._staged
            or self.chunks.has(digest)
            or self.catalog.has_small_chunk(digest)
        )

    def commit(self, manifest: Manifest) -> None:
        """List a file whose chunks are all stored; replaces a file of the same name."""
        manifest.check()
        sizes: dict[bytes, int] = {}
        small: dict[bytes, bytes] = {}
        with self._lock:
            staged = {d: self._staged[d] for d in manifest.chunks if d in self._staged}
        for digest in manifest.chunks:
            if digest in staged:
                small[digest] = staged[digest]
                sizes[digest] = len(staged[digest])
            elif self.chunks.has(digest):
                sizes[digest] = self.chunks.size_of(digest)
            elif (kept := self.catalog.small_chunk(digest)) is not None:
                sizes[digest] = len(kept)
            else:
                raise IncompleteFile(f"{manifest.name}: chunk {digest.hex()} is not stored")
        self.chunks.sync(manifest.chunks)  # the chunks are durable before the file is listed
        freed = self.catalog.put(manifest, sizes, small)
        with self._lock:
            for digest in small:
                self._staged.pop(digest, None)
            self._pending = max(0, self._pending - sum(sizes.values()))
        for digest in freed:
            self.chunks.remove(digest)

    def remove(self, name: str, tombstone: float | None = None) -> Manifest | None:
        """Remove a file; with `tombstone`, remember the removal so an older copy offered
        later by another holder is refused."""
        manifest, freed = self.catalog.remove(name, tombstone)
        for digest in freed:
            self.chunks.remove(digest)
        return manifest

    def discard(self, digests: list[bytes]) -> None:
        """Drop chunks of a put that failed, unless a committed file uses them."""
        referenced = self.catalog.referenced()
        for digest in digests:
            with self._lock:
                data = self._staged.pop(digest, None)
                if data is not None:
                    self._pending = max(0, self._pending - len(data))
                    continue
            if digest not in referenced:
                with self._lock:
                    self._pending = max(0, self._pending - self.chunks.size_of(digest))
                self.chunks.remove(digest)

    def manifest(self, name: str) -> Manifest | None:
        return self.catalog.get(name)

    def manifests(self) -> list[Manifest]:
        return self.catalog.manifests()

    def by_sha256(self, sha256: bytes) -> list[Manifest]:
        return self.catalog.by_sha256(sha256)

    def read_chunk(self, digest: bytes, verify: bool = True) -> bytes:
        with self._lock:
            staged = self._staged.get(digest)
        if staged is not None:
            return staged
        small = self.catalog.small_chunk(digest)
        if small is not None:
            return small
        return self.chunks.get(digest, verify)

    def collect_garbage(self) -> int:
        """Delete chunks no committed file uses (left by puts a crash interrupted)."""
        referenced = self.catalog.referenced()
        removed = 0
        for digest in self.chunks.digests():
            if digest not in referenced:
                self.chunks.remove(digest)
                removed += 1
        return removed

    def close(self) -> None:
        self.catalog.close()


__all__ = ["ChunkError", "IncompleteFile", "Manifest", "NodeStore", "QuotaExceeded"]
