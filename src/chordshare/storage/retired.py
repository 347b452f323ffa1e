"""Versions a replace or a removal took a name from, kept for a while by manifest id.

A link names exact bytes (`files.links`): it keeps working after its name is replaced or
removed for as long as a holder keeps those bytes. So a holder keeps each version it
replaced or removed, with its chunks still referenced (in the quota, never swept as
unreferenced), until the node's grace period has passed; only a get that asks for that
manifest id reaches it. The catalog calls these with its cursor, in its transactions.
"""

from __future__ import annotations

import sqlite3

from chordshare.files.manifest import Manifest
from chordshare.storage.rows import claim_columns, manifest_of_row

# Version 5 of the catalog's schema (`storage.schema`).
SCHEMA = """
CREATE TABLE retired (
    id BLOB PRIMARY KEY,           -- Manifest.id: what a link names
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunks BLOB NOT NULL,
    created REAL NOT NULL,
    publisher BLOB,
    signature BLOB,
    retired REAL NOT NULL          -- when it lost its name
);
CREATE INDEX retired_by_time ON retired (retired);
"""

_COLUMNS = "name, size, sha256, chunk_size, chunks, created, publisher, signature"


def retire(cur: sqlite3.Cursor, old: Manifest, at: float) -> bool:
    """Keep `old` from `at` on; False when that very version is kept already (its chunks
    are referenced once for it, so the caller releases this reference)."""
    cur.execute(
        f"INSERT OR IGNORE INTO retired (id, {_COLUMNS}, retired) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            old.id,
            old.name,
            old.size,
            old.sha256,
            old.chunk_size,
            b"".join(old.chunks),
            old.created,
            *claim_columns(old.claim),
            at,
        ),
    )
    return cur.rowcount == 1


def expired(cur: sqlite3.Cursor, before: float) -> list[Manifest]:
    """The versions retired before `before`, taken out of the table: their chunks are the
    caller's to release."""
    rows = cur.execute(f"SELECT {_COLUMNS} FROM retired WHERE retired < ?", (before,)).fetchall()
    cur.execute("DELETE FROM retired WHERE retired < ?", (before,))
    return [manifest_of_row(row) for row in rows]


def by_id(db: sqlite3.Connection | sqlite3.Cursor, manifest_id: bytes) -> Manifest | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM retired WHERE id = ?", (manifest_id,)).fetchone()
    return None if row is None else manifest_of_row(row)
