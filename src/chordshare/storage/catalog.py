"""The metadata of a node's files, in SQLite with write-ahead logging.

A file is listed only once its manifest is committed, and a manifest is committed only
after all its chunks are on disk (the store checks): so a crash during a put never leaves a
partial file listed. Chunk reference counts say when a chunk's last file is gone.

Opening brings the catalog's schema up to date (`storage.schema`: its versions and
migrations).

Opening also checks the catalog (SQLite's quick_check, one read of every page) and that it
can be written: a catalog that is damaged raises CatalogDamaged, one that cannot be written
or opened CatalogUnusable, each with one line naming the file, at start rather than at the
first put.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chordshare.files.lineage import Ancestry, encode_ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut, decode_held, encode_held
from chordshare.storage import retired
from chordshare.storage.rows import (
    COLUMNS,
    TOMBSTONE_COLUMNS,
    UNFINISHED,
    Tombstone,
    ancestry_of,
    claim_columns,
    manifest_of_row,
    tombstone_of_row,
    unfinished_of_row,
)
from chordshare.storage.schema import MIGRATIONS, Migration, migrate


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
        ancestry: Ancestry | None = None,
        retire_at: float | None = None,
    ) -> list[bytes]:
        """Record a file (replacing one of the same name, kept from `retire_at` on if
        given: `storage.retired`), with the bytes of its `small` chunks kept in the catalog
        and its lineage. Returns the chunks that no file references any more, for the
        store to delete."""
        manifest.check()
        with self._transaction() as cur:
            for digest, data in (small or {}).items():
                cur.execute(
                    "INSERT OR IGNORE INTO small_chunks (digest, data) VALUES (?, ?)",
                    (digest, data),
                )
            # The new version's references first: a chunk it shares with the version it
            # replaces never drops to none, so neither its row nor its bytes (a small
            # chunk's live in that row's neighbour table) are deleted on the way. A put of
            # the name that ended unfinished ends here too, its chunks now the file's.
            self._hold(cur, manifest.chunks, chunk_sizes)
            freed = self._unlink(cur, manifest.name, retire_at)
            freed += self._drop_unfinished(cur, manifest.name)
            cur.execute(
                "DELETE FROM tombstones WHERE name = ? AND version < ?",
                (manifest.name, manifest.created),
            )
            cur.execute(
                f"INSERT INTO files ({COLUMNS}, ancestry) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    manifest.name,
                    manifest.size,
                    manifest.sha256,
                    manifest.chunk_size,
                    b"".join(manifest.chunks),
                    manifest.created,
                    *claim_columns(manifest.claim),
                    encode_ancestry(ancestry),
                ),
            )
        return freed

    def _unlink(
        self, cur: sqlite3.Cursor, name: str, retire_at: float | None = None
    ) -> list[bytes]:
        row = cur.execute(f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)).fetchone()
        if row is None:
            return []
        old = manifest_of_row(row)
        cur.execute("DELETE FROM files WHERE name = ?", (name,))
        if retire_at is not None and retired.retire(cur, old, retire_at):
            return []  # its chunks stay referenced, by the retired version now
        return self._release(cur, old.chunks)

    def sweep_retired(self, before: float) -> list[bytes]:
        """Forget the versions retired before `before`; returns the chunks now unused."""
        with self._transaction() as cur:
            gone = retired.expired(cur, before)
            return self._release(cur, [d for manifest in gone for d in manifest.chunks])

    def retired(self, manifest_id: bytes) -> Manifest | None:
        """A version a replace or removal took its name from, still kept, by its id."""
        with self._lock:
            return retired.by_id(self._db, manifest_id)

    @staticmethod
    def _hold(cur: sqlite3.Cursor, digests: Iterable[bytes], sizes: dict[bytes, int]) -> None:
        """One more reference to each of digests (a digest listed twice gets two)."""
        for digest in digests:
            cur.execute(
                "INSERT INTO chunk_refs (digest, refs, size) VALUES (?, 1, ?) "
                "ON CONFLICT (digest) DO UPDATE SET refs = refs + 1",
                (digest, sizes[digest]),
            )

    @staticmethod
    def _release(cur: sqlite3.Cursor, digests: Iterable[bytes]) -> list[bytes]:
        """One reference fewer to each of digests; returns those no longer referenced."""
        freed = []
        for digest in digests:
            cur.execute("UPDATE chunk_refs SET refs = refs - 1 WHERE digest = ?", (digest,))
            left = cur.execute("SELECT refs FROM chunk_refs WHERE digest = ?", (digest,))
            (refs,) = left.fetchone()
            if refs <= 0:
                cur.execute("DELETE FROM chunk_refs WHERE digest = ?", (digest,))
                cur.execute("DELETE FROM small_chunks WHERE digest = ?", (digest,))
                freed.append(digest)
        return freed

    # Unfinished puts (`files.unfinished`): their chunks are referenced as a file's are.

    def keep_unfinished(self, record: UnfinishedPut, sizes: dict[bytes, int]) -> list[bytes]:
        """Record what an unfinished put of record.name kept, in place of the one recorded
        before; returns the chunks no longer referenced."""
        record.check()
        with self._transaction() as cur:
            self._hold(cur, (digest for _, digest in record.held), sizes)
            freed = self._drop_unfinished(cur, record.name)
            cur.execute(
                f"INSERT INTO unfinished ({UNFINISHED}) VALUES (?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.size,
                    record.chunk_size,
                    encode_held(record.held),
                    record.ended,
                ),
            )
        return freed

    def drop_unfinished(self, names: Iterable[str]) -> list[bytes]:
        """Forget the unfinished puts of names; returns the chunks no longer referenced."""
        with self._transaction() as cur:
            return [digest for name in names for digest in self._drop_unfinished(cur, name)]

    def _drop_unfinished(self, cur: sqlite3.Cursor, name: str) -> list[bytes]:
        row = cur.execute("SELECT held FROM unfinished WHERE name = ?", (name,)).fetchone()
        if row is None:
            return []
        cur.execute("DELETE FROM unfinished WHERE name = ?", (name,))
        return self._release(cur, (digest for _, digest in decode_held(bytes(row[0]))))

    def unfinished(self, name: str) -> UnfinishedPut | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {UNFINISHED} FROM unfinished WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else unfinished_of_row(row)

    def unfinished_puts(self) -> list[UnfinishedPut]:
        with self._lock:
            rows = self._db.execute(f"SELECT {UNFINISHED} FROM unfinished ORDER BY name")
            return [unfinished_of_row(row) for row in rows.fetchall()]

    def remove(
        self,
        name: str,
        tombstone: float | None = None,
        ancestry: Ancestry | None = None,
        claim: Claim | None = None,
        retire_at: float | None = None,
    ) -> tuple[Manifest | None, list[bytes]]:
        """Forget a file, and remember it was removed at version `tombstone` if given, with
        the removal's lineage and who signed it. Returns its manifest (None if absent) and
        the chunks now unused."""
        with self._transaction() as cur:
            if tombstone is not None:
                # The caller merged the removal with the one held (`merged_removal`).
                cur.execute(
                    "INSERT INTO tombstones (name, version, ancestry, publisher, signature) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "version = MAX(version, excluded.version), ancestry = excluded.ancestry, "
                    "publisher = excluded.publisher, signature = excluded.signature",
                    (name, tombstone, encode_ancestry(ancestry), *claim_columns(claim)),
                )
            row = cur.execute(f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None, []
            kept_until = retire_at if tombstone is not None else None  # a drop is no removal
            return manifest_of_row(row), self._unlink(cur, name, kept_until)

    def tombstone(self, name: str) -> float | None:
        """The version at which name was removed, if it was."""
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM tombstones WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else float(row[0])

    def removal(self, name: str) -> Tombstone | None:
        """The version at which name was removed, the removal's lineage and claim, if it
        was."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else tombstone_of_row(row)

    def tombstones(self) -> list[Tombstone]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones ORDER BY name"
            ).fetchall()
        return [tombstone_of_row(row) for row in rows]

    def ancestry(self, name: str) -> Ancestry | None:
        """The lineage of the file stored under name (None: not known, or no such file)."""
        with self._lock:
            row = self._db.execute("SELECT ancestry FROM files WHERE name = ?", (name,)).fetchone()
        return None if row is None else ancestry_of(row[0])

    def ancestries(self) -> dict[str, Ancestry | None]:
        """The lineage of every file, by name."""
        with self._lock:
            rows = self._db.execute("SELECT name, ancestry FROM files").fetchall()
        return {str(name): ancestry_of(blob) for name, blob in rows}

    def get(self, name: str) -> Manifest | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM files WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else manifest_of_row(row)

    def by_sha256(self, sha256: bytes) -> list[Manifest]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM files WHERE sha256 = ? ORDER BY name", (sha256,)
            ).fetchall()
        return [manifest_of_row(r) for r in rows]

    def manifests(self) -> list[Manifest]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM files ORDER BY name").fetchall()
        return [manifest_of_row(r) for r in rows]

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
