"""A node's store: chunks and catalog together, with a quota on stored bytes."""

from __future__ import annotations

import threading
from pathlib import Path

from chordshare.storage.catalog import Catalog, Manifest
from chordshare.storage.chunks import ChunkError, ChunkStore


class QuotaExceeded(Exception):
    """Storing this would take the node past its --max-store quota."""


class IncompleteFile(Exception):
    """A manifest was committed before all of its chunks were stored."""


class NodeStore:
    def __init__(self, data_dir: Path, max_bytes: int | None = None) -> None:
        self.data_dir = data_dir
        self.max_bytes = max_bytes
        self.chunks = ChunkStore(data_dir / "chunks")
        self.catalog = Catalog(data_dir / "catalog.sqlite3")
        self._pending = 0  # bytes of chunks stored for files not committed yet
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
            fresh = expected is None or not self.chunks.has(expected)
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

    def commit(self, manifest: Manifest) -> None:
        """List a file whose chunks are all stored; replaces a file of the same name."""
        manifest.check()
        sizes = {}
        for digest in manifest.chunks:
            if not self.chunks.has(digest):
                raise IncompleteFile(f"{manifest.name}: chunk {digest.hex()} is not stored")
            sizes[digest] = self.chunks.size_of(digest)
        self.chunks.sync(manifest.chunks)  # the chunks are durable before the file is listed
        freed = self.catalog.put(manifest, sizes)
        with self._lock:
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

    def read_chunk(self, digest: bytes) -> bytes:
        return self.chunks.get(digest)

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
