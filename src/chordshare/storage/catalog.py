"""The metadata of a node's files, in SQLite with write-ahead logging.

A file is listed only once its manifest is committed, and a manifest is committed only
after all its chunks are on disk (the store checks): so a crash during a put never leaves a
partial file listed. Chunk reference counts say when a chunk's last file is gone.

The catalog's schema has a version (SQLite's `user_version`), brought up to date when the
catalog is opened: each of MIGRATIONS takes it one version up, in a transaction of its own.
A catalog that has the tables and no version is at version 1, their version.

Opening also checks the catalog (SQLite's quick_check, one read of every page) and that it
can be written: a catalog that is damaged raises CatalogDamaged, one that cannot be written
or opened CatalogUnusable, each with one line naming the file, at start rather than at the
first put.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chordshare.files.manifest import DIGEST_BYTES, Manifest

# Version 1. IF NOT EXISTS: a catalog without a version has these tables already, rows and
# all, and is at this version once they are sure to be there.
SCHEMA_1 = """
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


Migration = Callable[[sqlite3.Cursor], None]


def _statements(script: str) -> Migration:
    """A migration that runs the statements of `script` one by one (executescript would
    commit the migration's transaction before running them)."""

    def run(cur: sqlite3.Cursor) -> None:
        pending = ""
        for line in script.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                cur.execute(pending)
                pending = ""

    return run


# MIGRATIONS[i] takes a catalog from version i to version i + 1.
MIGRATIONS: tuple[Migration, ...] = (_statements(SCHEMA_1),)


class CatalogUnusable(OSError):
    """The catalog cannot be opened or written: `reason` says why, `remedy` what to do."""

    def __init__(self, path: Path, reason: str, remedy: str = "") -> None:
        self.path, self.reason, self.remedy = path, reason, remedy
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"catalog {self.path} cannot be used ({self.reason})" + (
            self.remedy and f": {self.remedy}"
        )


class CatalogDamaged(CatalogUnusable):
    """The catalog's file is not a sound SQLite database any more (cut short, overwritten,
    malformed pages): what it held is lost here, and the ring holds the files again."""

    def _describe(self) -> str:
        return f"catalog {self.path} is damaged ({self.reason})"


# SQLite's primary result codes that mean the file's contents are broken, and those that
# mean this process may not open or write it (the file is fine: never set it aside).
_DAMAGE = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_NO_ACCESS = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
_ACCESS_REMEDY = "give the user this node runs as write access to it and to its directory"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def unusable(path: Path, err: sqlite3.DatabaseError) -> CatalogUnusable:
    """What an SQLite error met while opening the catalog at `path` means for the node."""
    code = getattr(err, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    reason = _one_line(str(err))
    if primary in _DAMAGE:
        return CatalogDamaged(path, reason)
    return CatalogUnusable(path, reason, _ACCESS_REMEDY if primary in _NO_ACCESS else "")


def check_sound(db: sqlite3.Connection, path: Path) -> None:
    """Raise CatalogDamaged unless SQLite finds every page of the catalog well formed.
    quick_check reads each page once (about 3 s for a 1 GB catalog from a cold disk);
    integrity_check would also match every index to its table, which the rows need not."""
    found = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
    if found != ["ok"]:
        problem = found[0].removeprefix("*** in database main ***") if found else "no answer"
        raise CatalogDamaged(path, _one_line(f"quick_check: {problem}"))


def _cut_to_nothing(path: Path) -> bool:
    """Whether the catalog is an empty file with no log beside it. SQLite takes that for a
    new database, but a catalog is never empty once created: it lost every manifest."""
    if not path.is_file() or path.stat().st_size > 0:
        return False
    wal = path.with_name(path.name + "-wal")
    return not (wal.exists() and wal.stat().st_size > 0)


class CatalogTooNew(OSError):
    """The catalog has a schema newer than this build knows: a newer chordshare made it.
    An OSError, as the data directory is then unusable to this build as much as if it
    could not be read."""


def migrate(
    db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Bring the catalog at `path` (open as `db`, in autocommit mode) to the newest version
    `migrations` make, one transaction per version, and return that version. A catalog
    newer than that is refused (CatalogTooNew) and left as it is."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > len(migrations):
        raise CatalogTooNew(
            f"catalog at {path} is schema {version}; this chordshare knows up to {len(migrations)}"
        )
    for target in range(version + 1, len(migrations) + 1):
        cur = db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            migrations[target - 1](cur)
            cur.execute(f"PRAGMA user_version = {target:d}")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    return len(migrations)


def _row_to_manifest(row: tuple) -> Manifest:
    name, size, sha256, chunk_size, chunks, created = row
    blob = bytes(chunks)
    digests = tuple(blob[i : i + DIGEST_BYTES] for i in range(0, len(blob), DIGEST_BYTES))
    return Manifest(name, size, bytes(sha256), chunk_size, digests, created)


COLUMNS = "name, size, sha256, chunk_size, chunks, created"


class Catalog:
    def __init__(self, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Open (or create) the catalog at `path` and bring it up to date: CatalogDamaged,
        CatalogUnusable or CatalogTooNew when it cannot serve this node."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if _cut_to_nothing(path):
            raise CatalogDamaged(path, "the file is empty")
        # One connection shared by the threads the runtime uses for disk work; the lock
        # keeps each transaction whole.
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as err:
            raise unusable(path, err) from None
        self._lock = threading.Lock()
        try:
            check_sound(self._db, path)
            # Before the journal mode is set: a catalog too new is left exactly as it was.
            self.version = migrate(self._db, path, migrations)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # A write that changes nothing, undone: a catalog file this process may only
            # read opens and reads well, and would fail only at the first put.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(f"PRAGMA user_version = {self.version:d}")
            self._db.execute("ROLLBACK")
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise unusable(path, err) from None
        except BaseException:
            self._db.close()
            raise

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
