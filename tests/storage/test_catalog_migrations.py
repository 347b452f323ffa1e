"""The catalog brings its schema up to date when opened: a catalog without a version keeps
every row, one too new is refused and left alone, and opening an up-to-date one changes
nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chordshare.storage.catalog import Catalog
from chordshare.storage.schema import MIGRATIONS, CatalogTooNew, migrate

# The tables as nodes made them while catalogs had no version: the fixture's own copy, so a
# change to the current schema cannot change what an old catalog looks like here.
UNVERSIONED_DDL = """
CREATE TABLE files (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunks BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX files_by_sha256 ON files (sha256);
CREATE TABLE tombstones (
    name TEXT PRIMARY KEY,
    version REAL NOT NULL
);
CREATE TABLE small_chunks (
    digest BLOB PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE chunk_refs (
    digest BLOB PRIMARY KEY,
    refs INTEGER NOT NULL,
    size INTEGER NOT NULL
);
"""
# Each table's columns as the unversioned catalog had them: what a migration must keep.
TABLES = {
    "files": "name, size, sha256, chunk_size, chunks, created",
    "tombstones": "name, version",
    "small_chunks": "digest, data",
    "chunk_refs": "digest, refs, size",
}
SMALL = b"s" * 32
LARGE = b"l" * 32


def rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        return {
            t: sorted(db.execute(f"SELECT {columns} FROM {t}").fetchall())
            for t, columns in TABLES.items()
        }


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def unversioned(tmp_path: Path) -> Path:
    """A catalog of two files (one of them small), a tombstone, in the unversioned tables."""
    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(UNVERSIONED_DDL)
    db.executemany(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("notes.txt", 5, b"n" * 32, 65536, SMALL, 1.5),
            ("video.bin", 100_000, b"v" * 32, 65536, SMALL + LARGE, 2.5),
        ],
    )
    db.execute("INSERT INTO tombstones VALUES ('gone.txt', 3.5)")
    db.execute("INSERT INTO small_chunks VALUES (?, ?)", (SMALL, b"hello"))
    db.executemany("INSERT INTO chunk_refs VALUES (?, ?, ?)", [(SMALL, 2, 5), (LARGE, 1, 34_464)])
    db.commit()
    db.close()
    return path


def test_an_unversioned_catalog_comes_up_to_date_with_every_row(unversioned: Path) -> None:
    before = rows(unversioned)
    assert user_version(unversioned) == 0
    catalog = Catalog(unversioned)
    try:
        assert catalog.version == len(MIGRATIONS) == 5
        manifest = catalog.get("video.bin")
        assert manifest is not None and manifest.chunks == (SMALL, LARGE)
        assert catalog.tombstone("gone.txt") == 3.5
        assert catalog.small_chunk(SMALL) == b"hello"
        assert catalog.stored_bytes() == 5 + 34_464
        # What was stored before lineages were kept has none: not known, never empty.
        assert catalog.ancestry("video.bin") is None
        gone = catalog.removal("gone.txt")
        assert gone is not None and (gone.version, gone.ancestry) == (3.5, None)
        # Nor a publisher: anyone may replace or remove what was stored before signatures.
        assert manifest.claim is None and gone.claim is None
    finally:
        catalog.close()
    assert user_version(unversioned) == len(MIGRATIONS)
    assert rows(unversioned) == before


def test_a_catalog_newer_than_this_build_is_refused_and_left_alone(unversioned: Path) -> None:
    Catalog(unversioned).close()
    db = sqlite3.connect(unversioned)
    db.execute("PRAGMA user_version = 7")
    db.close()
    content = unversioned.read_bytes()

    with pytest.raises(CatalogTooNew) as refused:
        Catalog(unversioned)
    assert str(refused.value) == (
        f"catalog at {unversioned} is schema 7; this chordshare knows up to {len(MIGRATIONS)}"
    )
    assert isinstance(refused.value, OSError)  # what a node reports as a data directory's
    assert unversioned.read_bytes() == content


def test_opening_an_up_to_date_catalog_changes_nothing(unversioned: Path) -> None:
    Catalog(unversioned).close()
    before = rows(unversioned)
    db = sqlite3.connect(unversioned, isolation_level=None)
    try:
        assert migrate(db, unversioned) == len(MIGRATIONS)
        assert db.total_changes == 0
    finally:
        db.close()
    Catalog(unversioned).close()
    assert user_version(unversioned) == len(MIGRATIONS)
    assert rows(unversioned) == before


def test_a_new_catalog_starts_at_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "catalog.sqlite3"
    Catalog(path).close()
    assert user_version(path) == len(MIGRATIONS)
    assert rows(path) == {t: [] for t in TABLES}


def test_each_version_is_one_transaction(unversioned: Path) -> None:
    def add_origin(cur: sqlite3.Cursor) -> None:
        cur.execute("ALTER TABLE files ADD COLUMN origin TEXT NOT NULL DEFAULT ''")

    def half_done(cur: sqlite3.Cursor) -> None:
        cur.execute("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("the migration failed halfway")

    with pytest.raises(RuntimeError):
        Catalog(unversioned, (*MIGRATIONS, add_origin, half_done))
    # The versions before were committed; nothing of the half-done one is left.
    assert user_version(unversioned) == len(MIGRATIONS) + 1
    with sqlite3.connect(unversioned) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        origins = db.execute("SELECT DISTINCT origin FROM files").fetchall()
    assert "half" not in tables and origins == [("",)]

    catalog = Catalog(unversioned, (*MIGRATIONS, add_origin))
    try:
        assert catalog.version == len(MIGRATIONS) + 1 and len(catalog.manifests()) == 2
    finally:
        catalog.close()
