"""The metadata of a node's files, in SQLite with write-ahead logging.

A file is listed only once its manifest is committed, and a manifest is committed only
after all its chunks are on disk (the store checks): so a crash during a put never leaves a
partial file listed. Chunk reference counts say when a chunk's last file is gone.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chordshare.storage.chunks import DIGEST_BYTES

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunks BLOB NOT NULL,          -- the SHA-256 of every chunk, 32 bytes each, in order
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
-- Names removed, and when: a copy of an older version offered later must not resurrect them.
CREATE TABLE IF NOT EXISTS tombstones (
    name TEXT PRIMARY KEY,
    version REAL NOT NULL
);
-- Chunks small enough to keep in the catalog itself: a small file then costs one commit
-- (one fsync) instead of a chunk file, its directory and the commit.
CREATE TABLE IF NOT EXISTS small_chunks (
    digest BLOB PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chunk_refs (
    digest BLOB PRIMARY KEY,
    refs INTEGER NOT NULL,
    size INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a file is: its name, size, whole-file SHA-256 and the SHA-256 of each chunk."""

    name: str
    size: int
    sha256: bytes
    chunk_size: int
    chunks: tuple[bytes, ...]
    created: float

    @property
    def chunk_count(self) -> int:
        """How many chunks the file's size makes (a promised manifest lists none yet)."""
        return -(-self.size // self.chunk_size)

    def chunk_length(self, index: int) -> int:
        """Bytes in chunk `index` (the last one may be short)."""
        start = index * self.chunk_size
        return max(0, min(self.chunk_size, self.size - start))

    def check(self) -> None:
        """Raise ValueError when the manifest contradicts itself."""
        if self.size < 0 or self.chunk_size <= 0:
            raise ValueError("size must be >= 0 and chunk size > 0")
        expected = self.chunk_count
        if len(self.chunks) != expected:
            raise ValueError(
                f"a {self.size}-byte file in {self.chunk_size}-byte chunks has {expected} "
                f"chunks, the manifest lists {len(self.chunks)}"
            )
        if len(self.sha256) != DIGEST_BYTES or any(len(c) != DIGEST_BYTES for c in self.chunks):
            raise ValueError("hashes must be SHA-256 digests (32 bytes)")


def _row_to_manifest(row: tuple) -> Manifest:
    name, size, sha256, chunk_size, chunks, created = row
    blob = bytes(chunks)
    digests = tuple(blob[i : i + DIGEST_BYTES] for i in range(0, len(blob), DIGEST_BYTES))
    return Manifest(name, size, bytes(sha256), chunk_size, digests, created)


COLUMNS = "name, size, sha256, chunk_size, chunks, created"


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the threads the runtime uses for disk work; the lock
        # keeps each transaction whole.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def put(
        self,
        manifest: Manifest,
        chunk_sizes: dict[bytes, int],
        small: dict[bytes, bytes] | None = None,
    ) -> list[bytes]:
        """Record a file (replacing one of the same name), with the bytes of its `small`
        chunks kept in the catalog. Returns the chunks that no file references any more,
        for the store to delete."""
        manifest.check()
        with self._transaction() as cur:
            for digest, data in (small or {}).items():
                cur.execute(
                    "INSERT OR IGNORE INTO small_chunks (digest, data) VALUES (?, ?)",
                    (digest, data),
                )
            # The new version's references first: a chunk it shares with the version it
            # replaces never drops to none, so neither its row nor its bytes (a small
            # chunk's live in that row's neighbour table) are deleted on the way.
            for digest in manifest.chunks:
                cur.execute(
                    "INSERT INTO chunk_refs (digest, refs, size) VALUES (?, 1, ?) "
                    "ON CONFLICT (digest) DO UPDATE SET refs = refs + 1",
                    (digest, chunk_sizes[digest]),
                )
            freed = self._unlink(cur, manifest.name)
            cur.execute(
                "DELETE FROM tombstones WHERE name = ? AND version < ?",
                (manifest.name, manifest.created),
            )
            cur.execute(
                f"INSERT INTO files ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    manifest.name,
                    manifest.size,
                    manifest.sha256,
                    manifest.chunk_size,
                    b"".join(manifest.chunks),
                    manifest.created,
                ),
            )
        return freed

    def _unlink(self, cur: sqlite3.Cursor, name: str) -> list[bytes]:
        row = cur.execute(f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)).fetchone()
        if row is None:
            return []
        old = _row_to_manifest(row)
        cur.execute("DELETE FROM files WHERE name = ?", (name,))
        freed = []
        for digest in old.chunks:
            cur.execute("UPDATE chunk_refs SET refs = refs - 1 WHERE digest = ?", (digest,))
            left = cur.execute("SELECT refs FROM chunk_refs WHERE digest = ?", (digest,))
            (refs,) = left.fetchone()
            if refs <= 0:
                cur.execute("DELETE FROM chunk_refs WHERE digest = ?", (digest,))
                cur.execute("DELETE FROM small_chunks WHERE digest = ?", (digest,))
                freed.append(digest)
        return freed

    def remove(
        self, name: str, tombstone: float | None = None
    ) -> tuple[Manifest | None, list[bytes]]:
        """Forget a file, and remember it was removed at version `tombstone` if given.
        Returns its manifest (None if absent) and the chunks now unused."""
        with self._transaction() as cur:
            if tombstone is not None:
                cur.execute(
                    "INSERT INTO tombstones (name, version) VALUES (?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET version = MAX(version, excluded.version)",
                    (name, tombstone),
                )
            row = cur.execute(f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None, []
            return _row_to_manifest(row), self._unlink(cur, name)

    def tombstone(self, name: str) -> float | None:
        """The version at which name was removed, if it was."""
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM tombstones WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else float(row[0])

    def tombstones(self) -> list[tuple[str, float]]:
        with self._lock:
            rows = self._db.execute("SELECT name, version FROM tombstones ORDER BY name")
            return [(str(n), float(v)) for n, v in rows]

    def get(self, name: str) -> Manifest | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _row_to_manifest(row)

    def by_sha256(self, sha256: bytes) -> list[Manifest]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM files WHERE sha256 = ? ORDER BY name", (sha256,)
            ).fetchall()
        return [_row_to_manifest(r) for r in rows]

    def manifests(self) -> list[Manifest]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM files ORDER BY name").fetchall()
        return [_row_to_manifest(r) for r in rows]

    def small_chunk(self, digest: bytes) -> bytes | None:
        """The bytes of a chunk kept in the catalog, if it is one."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM small_chunks WHERE digest = ?", (digest,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def has_small_chunk(self, digest: bytes) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM small_chunks WHERE digest = ?", (digest,)
            ).fetchone()
        return row is not None

    def referenced(self) -> set[bytes]:
        with self._lock:
            return {bytes(d) for (d,) in self._db.execute("SELECT digest FROM chunk_refs")}

    def stored_bytes(self) -> int:
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM chunk_refs").fetchone()
        return int(total)

    def close(self) -> None:
        with self._lock:
            self._db.close()
