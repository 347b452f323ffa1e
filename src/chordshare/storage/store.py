"""A node's store: chunks and catalog together, with a quota on stored bytes.

Chunks up to SMALL_CHUNK bytes live in the catalog itself, written in the same transaction
as the file that uses them (one fsync for a small file); larger ones are files of their own,
flushed together when their file is committed. Until then a small chunk is held in memory
(staged), so a put that fails leaves nothing of it behind.

The quota counts committed chunks, chunks kept for puts that ended unfinished
(`files.unfinished`: referenced in the catalog as a file's are), chunks stored for puts not
committed yet, and space reserved by puts under way: a put reserves the bytes it will add
before it receives any (`reserve`), so one over the quota is refused before a byte is
written, and puts running together cannot pass it between them.

A damaged catalog stops the store from opening (CatalogDamaged), unless it is opened to
recover: then the catalog is set aside and the sound chunk files kept (`recovery.py`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Collection
from pathlib import Path

from chordshare.files.lineage import Ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut
from chordshare.storage.catalog import Catalog, CatalogDamaged
from chordshare.storage.chunks import ChunkError, ChunkStore, digest_of
from chordshare.storage.recovery import Recovery, recover

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite3"

SMALL_CHUNK = 64 * 1024  # chunks up to this size live in the catalog


class QuotaExceeded(Exception):
    """Storing this would take the node past its --max-store quota."""


class IncompleteFile(Exception):
    """A manifest was committed before all of its chunks were stored."""


class Reservation:
    """Space set aside in a store's quota for one put; `left` bytes are still unused."""

    def __init__(self, nbytes: int) -> None:
        self.left = nbytes


class NodeStore:
    def __init__(
        self,
        data_dir: Path,
        max_bytes: int | None = None,
        small_chunk: int = SMALL_CHUNK,
        recover_damaged: bool = False,
        keep_replaced: float = 0.0,
    ) -> None:
        """Open the store in `data_dir`. A damaged catalog raises CatalogDamaged, unless
        `recover_damaged`: then it is set aside and the store starts afresh (`recovery`
        says what was done). A sound catalog is opened as it is either way."""
        self.data_dir = data_dir
        self.max_bytes = max_bytes
        # Seconds a version replaced or removed here is kept for links to it
        # (`storage.retired`); 0: not kept.
        self.keep_replaced = keep_replaced
        self.small_chunk = small_chunk
        self.chunks = ChunkStore(data_dir / "chunks")
        self.recovery: Recovery | None = None
        try:
            self.catalog = Catalog(data_dir / CATALOG)
        except CatalogDamaged as damaged:
            if not recover_damaged:
                raise
            self.recovery = recover(damaged, self.chunks)
            self.catalog = Catalog(data_dir / CATALOG)
        else:
            if recover_damaged:
                log.info("catalog %s is sound: nothing to recover", data_dir / CATALOG)
        # Chunks stored for files not committed yet, with their sizes, and their total.
        self._pending: dict[bytes, int] = {}
        self._pending_bytes = 0
        self._reserved = 0  # bytes puts under way have reserved and not stored yet
        self._staged: dict[bytes, bytes] = {}  # small chunks of puts not committed yet
        self._lock = threading.Lock()
        # The names with an unfinished put kept (`files.unfinished`): most puts ask, and
        # most names have none.
        self._unfinished = {record.name for record in self.catalog.unfinished_puts()}
        # Not after a recovery: every chunk kept is unreferenced until the ring's repair
        # brings its file back, and the sweep would delete exactly what recovery kept. The
        # next start sweeps whatever repair did not claim.
        if self.recovery is None:
            self.collect_garbage()

    def used_bytes(self) -> int:
        """Bytes of committed chunks and of chunks stored for puts not committed yet."""
        return self.catalog.stored_bytes() + self._pending_bytes

    def room(self) -> int:
        """Bytes this store can still take: what its quota leaves, and what its disk has
        free beyond what puts under way reserved (what a peer's repair may send it)."""
        with self._lock:
            reserved = self._reserved
        free = shutil.disk_usage(self.data_dir).free - reserved
        if self.max_bytes is not None:
            free = min(free, self.max_bytes - self.used_bytes() - reserved)
        return max(0, free)

    def _refuse_over_quota(self, more: int) -> None:
        """Raise QuotaExceeded unless `more` bytes fit beside what is used and reserved.
        Called with the lock held."""
        if self.max_bytes is None:
            return
        used = self.used_bytes()
        if used + self._reserved + more > self.max_bytes:
            reserved = f", {self._reserved} reserved by puts under way" if self._reserved else ""
            raise QuotaExceeded(
                f"storing {more} more bytes would pass this node's quota of "
                f"{self.max_bytes} bytes ({used} used{reserved})"
            )

    def reserve(self, nbytes: int) -> Reservation:
        """Set `nbytes` aside for a put about to store them, or raise QuotaExceeded.
        The put passes the reservation to `put_chunk` and `release`s it when it ends."""
        with self._lock:
            self._refuse_over_quota(nbytes)
            self._reserved += nbytes
        return Reservation(nbytes)

    def release(self, reservation: Reservation) -> None:
        """Give back what a put reserved and did not store."""
        with self._lock:
            self._reserved -= reservation.left
            reservation.left = 0

    def _add_pending(self, digest: bytes, size: int) -> None:
        if digest not in self._pending:
            self._pending[digest] = size
            self._pending_bytes += size

    def _drop_pending(self, digest: bytes) -> None:
        self._pending_bytes -= self._pending.pop(digest, 0)

    def put_chunk(
        self, data: bytes, expected: bytes | None = None, reservation: Reservation | None = None
    ) -> bytes:
        """Store one chunk of a file being written (checked against `expected`), out of
        `reservation` when the put made one."""
        with self._lock:
            fresh = expected is None or not self.has_chunk(expected)
            if fresh:
                taken = min(len(data), reservation.left) if reservation is not None else 0
                self._refuse_over_quota(len(data) - taken)
                if reservation is not None:
                    reservation.left -= taken
                    self._reserved -= taken
            if len(data) <= self.small_chunk:
                digest = self._check(data, expected)
                if fresh and digest not in self._staged:
                    self._staged[digest] = bytes(data)  # ours: data may be a borrowed view
                    self._add_pending(digest, len(data))
                return digest
            if fresh and expected is not None:
                self._add_pending(expected, len(data))  # before the write, outside the lock
        try:
            # Not flushed one by one: commit flushes a file's chunks together. Bytes that
            # came without their hash (a put that sends its manifest last) replace a copy
            # already here, which may have rotted: nothing else would read it back.
            digest = self.chunks.put(data, expected, sync=False, rewrite=expected is None)
        except BaseException:
            if fresh and expected is not None:
                with self._lock:
                    self._drop_pending(expected)
            raise
        if fresh and expected is None:
            with self._lock:
                self._add_pending(digest, len(data))
        return digest

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

    def commit(self, manifest: Manifest, ancestry: Ancestry | None = None) -> None:
        """List a file whose chunks are all stored, with its lineage; replaces a file of
        the same name."""
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
        # Ends an unfinished put of the name; the version it replaces is kept a while.
        freed = self.catalog.put(manifest, sizes, small, ancestry, self._retire_at())
        with self._lock:
            self._unfinished.discard(manifest.name)
            for digest in small:
                self._staged.pop(digest, None)
            for digest in manifest.chunks:
                self._drop_pending(digest)
        self._remove_unused(freed)

    def remove(
        self,
        name: str,
        tombstone: float | None = None,
        ancestry: Ancestry | None = None,
        claim: Claim | None = None,
    ) -> Manifest | None:
        """Remove a file; with `tombstone`, remember the removal (what it removed:
        `ancestry`, and who signed it) so an older copy offered later by another holder is
        refused."""
        manifest, freed = self.catalog.remove(name, tombstone, ancestry, claim, self._retire_at())
        self._remove_unused(freed)
        return manifest

    def _retire_at(self) -> float | None:
        return time.time() if self.keep_replaced > 0 else None

    def sweep_retired(self) -> int:
        """Drop the replaced versions kept longer than `keep_replaced`; how many chunks
        that freed."""
        freed = self.catalog.sweep_retired(time.time() - self.keep_replaced)
        self._remove_unused(freed)
        return len(freed)

    def retired(self, manifest_id: bytes) -> Manifest | None:
        """A version replaced or removed here and still kept, by its manifest id."""
        return self.catalog.retired(manifest_id)

    def discard(self, digests: list[bytes]) -> None:
        """Drop chunks of a put that failed, unless a committed file uses them."""
        referenced = self.catalog.referenced()
        for digest in digests:
            with self._lock:
                data = self._staged.pop(digest, None)
                if data is not None:
                    self._drop_pending(digest)
                    continue
            if digest not in referenced:
                with self._lock:
                    self._drop_pending(digest)
                self.chunks.remove(digest)

    # Puts that ended unfinished (`files.unfinished`): their chunks stay, counted in the
    # quota, until a put of the name commits, replaces them or drops them, or they expire.

    def keep_unfinished(self, record: UnfinishedPut, stored: list[bytes]) -> None:
        """Keep what an unfinished put kept (`record`, in place of the name's earlier one),
        and drop whatever else of `stored` it stored (chunks held in memory)."""
        digests = [digest for _, digest in record.held]
        self.chunks.sync(digests)  # on disk for good before the catalog names them
        sizes = {digest: record.chunk_length(index) for index, digest in record.held}
        freed = self.catalog.keep_unfinished(record, sizes)
        with self._lock:
            self._unfinished.add(record.name)
            for digest in digests:
                self._drop_pending(digest)  # counted in the catalog now
        self._remove_unused(freed)
        self.discard([digest for digest in stored if digest not in sizes])

    def drop_unfinished(self, names: Collection[str]) -> None:
        """Forget the unfinished puts of names, and the chunks only they kept."""
        with self._lock:
            names = [name for name in names if name in self._unfinished]
            self._unfinished.difference_update(names)
        if names:
            self._remove_unused(self.catalog.drop_unfinished(names))

    def unfinished(self, name: str) -> UnfinishedPut | None:
        return self.catalog.unfinished(name) if name in self._unfinished else None

    def unfinished_puts(self) -> list[UnfinishedPut]:
        return self.catalog.unfinished_puts() if self._unfinished else []

    def _remove_unused(self, freed: list[bytes]) -> None:
        for digest in freed:
            self.chunks.remove(digest)

    def manifest(self, name: str) -> Manifest | None:
        return self.catalog.get(name)

    def manifests(self) -> list[Manifest]:
        return self.catalog.manifests()

    def by_sha256(self, sha256: bytes) -> list[Manifest]:
        return self.catalog.by_sha256(sha256)

    def drop_chunk(self, digest: bytes) -> None:
        """Delete a chunk found damaged, even one committed files use: they are broken
        here until a put or a replica brings the chunk again (has_chunk says it is missing)."""
        self.chunks.remove(digest)

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
        """Delete chunks no committed file nor unfinished put uses (left by puts a crash
        interrupted)."""
        referenced = self.catalog.referenced()
        removed = 0
        for digest in self.chunks.digests():
            if digest not in referenced:
                self.chunks.remove(digest)
                removed += 1
        return removed

    def close(self) -> None:
        self.catalog.close()


__all__ = [
    "CatalogDamaged",
    "ChunkError",
    "IncompleteFile",
    "Manifest",
    "NodeStore",
    "QuotaExceeded",
    "Reservation",
]
