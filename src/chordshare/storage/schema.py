"""The catalog's schema, and the migrations that bring an older catalog up to it.

The schema has a version (SQLite's `user_version`): each of MIGRATIONS takes it one version
up, in a transaction of its own, when the catalog is opened. A catalog that has the tables
and no version is at version 1, their version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from chordshare.storage import retired

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


# Version 2: each file's and each removal's lineage (`files.lineage`: the versions it
# replaced or removed, 16 bytes each). NULL for what was stored before: not known.
SCHEMA_2 = """
ALTER TABLE files ADD COLUMN ancestry BLOB;
ALTER TABLE tombstones ADD COLUMN ancestry BLOB;
"""

# Version 3: who published each file and each removal (`files.publisher`): a raw Ed25519
# key and its signature. NULL for what was stored before: not signed.
SCHEMA_3 = """
ALTER TABLE files ADD COLUMN publisher BLOB;
ALTER TABLE files ADD COLUMN signature BLOB;
ALTER TABLE tombstones ADD COLUMN publisher BLOB;
ALTER TABLE tombstones ADD COLUMN signature BLOB;
"""

# Version 4: puts that ended unfinished (`files.unfinished`): the chunks each kept, for a
# rerun to send only the others, until the node's --unfinished-put-ttl has passed since it
# ended. Their chunks are counted in chunk_refs as a file's are: in the quota, and never
# swept as unreferenced.
SCHEMA_4 = """
CREATE TABLE unfinished (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    held BLOB NOT NULL,            -- each chunk kept: its index (4 bytes) and SHA-256
    ended REAL NOT NULL
);
"""

# MIGRATIONS[i] takes a catalog from version i to version i + 1.
MIGRATIONS: tuple[Migration, ...] = (
    _statements(SCHEMA_1),
    _statements(SCHEMA_2),
    _statements(SCHEMA_3),
    _statements(SCHEMA_4),
    # Version 5: versions a replace or removal took a name from, kept for links to them.
    _statements(retired.SCHEMA),
)


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
