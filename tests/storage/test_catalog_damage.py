"""A catalog that cannot serve the node is found when it is opened, as one clear error:
damaged (cut short, overwritten, a page gone bad, emptied) or only readable. Opened to
recover, a damaged catalog is set aside under a timestamped name, the chunk files that
still hash right are kept and the others deleted, and a fresh catalog takes its place; a
sound one is left exactly as it was."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chordshare.files.manifest import Manifest
from chordshare.storage.catalog import CatalogDamaged, CatalogUnusable
from chordshare.storage.recovery import set_aside
from chordshare.storage.store import NodeStore

CHUNK = 4096
NOBODY = 65534
STAMP = re.compile(r"catalog\.sqlite3\.damaged-\d{8}T\d{6}Z")


def manifest_of(store: NodeStore, name: str, data: bytes) -> Manifest:
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    digests = tuple(store.put_chunk(p, hashlib.sha256(p).digest()) for p in pieces)
    return Manifest(name, len(data), hashlib.sha256(data).digest(), CHUNK, digests, time.time())


def filled(data_dir: Path, small_chunk: int = 0) -> dict[str, bytes]:
    """A closed store in data_dir with three files of two chunks each; their bytes."""
    files = {f"file-{i}.bin": os.urandom(2 * CHUNK) for i in range(3)}
    store = NodeStore(data_dir, small_chunk=small_chunk)
    for name, data in files.items():
        store.commit(manifest_of(store, name, data))
    store.close()
    return files


def cut_to_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def a_page_overwritten(path: Path) -> None:
    """One page past the header gone bad: opening reads only the header, so only the check
    of every page at open finds it."""
    with path.open("r+b") as out:
        out.seek(3 * 4096)
        out.write(os.urandom(4096))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "cut to half": cut_to_half,
    "garbage": garbage,
    "emptied": emptied,
    "a page overwritten": a_page_overwritten,
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_catalog_is_one_error_naming_it(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    filled(tmp_path, small_chunk=64 * 1024)  # small chunks in the catalog: many pages
    catalog = tmp_path / "catalog.sqlite3"
    damage(catalog)
    damaged = catalog.read_bytes()
    with pytest.raises(CatalogDamaged) as caught:
        NodeStore(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"catalog {catalog} is damaged (") and "\n" not in message
    assert caught.value.path == catalog
    # Left as it was, chunks and all, for the user to decide.
    assert catalog.read_bytes() == damaged
    assert not list(tmp_path.glob("*.damaged-*"))


def test_a_sound_catalog_opens(tmp_path: Path) -> None:
    files = filled(tmp_path)
    store = NodeStore(tmp_path)
    assert sorted(m.name for m in store.manifests()) == sorted(files)


# Only readable ------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A data directory another user may reach (pytest's own temporary directories are
    private to their owner)."""
    made = Path(tempfile.mkdtemp(prefix="chordshare-catalog-"))
    made.chmod(0o755)
    yield made / "data"
    shutil.rmtree(made)


@contextmanager
def only_readable(data_dir: Path, path: Path) -> Iterator[None]:
    """Inside, `path` (in data_dir) may be read but not written. By its mode where this
    process is not root; root writes whatever the modes say, so there the code inside runs
    as nobody, to whom everything else in data_dir is given."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    for entry in [data_dir, *data_dir.rglob("*")]:
        os.chown(entry, NOBODY, NOBODY)
    os.chown(path, 0, 0)  # its mode (0644, 0755) lets others only read it
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize("what", ["catalog file", "data directory"])
@pytest.mark.parametrize("recover", [False, True], ids=["plain", "recovering"])
def test_a_catalog_that_cannot_be_written_is_one_error_and_never_set_aside(
    shared_dir: Path, what: str, recover: bool
) -> None:
    files = filled(shared_dir)
    catalog = shared_dir / "catalog.sqlite3"
    before = catalog.read_bytes()
    locked = catalog if what == "catalog file" else shared_dir
    with only_readable(shared_dir, locked), pytest.raises(CatalogUnusable) as caught:
        NodeStore(shared_dir, recover_damaged=recover)
    assert not isinstance(caught.value, CatalogDamaged), caught.value
    message = str(caught.value)
    assert message.startswith(f"catalog {catalog} cannot be used (") and "\n" not in message
    assert "readonly" in message and "write access" in message, message
    # Nothing moved or changed: with write access back it opens with every file.
    assert catalog.read_bytes() == before
    assert not list(shared_dir.glob("*.damaged-*"))
    store = NodeStore(shared_dir)
    assert sorted(m.name for m in store.manifests()) == sorted(files)


# Recovery ------------------------------------------------------------------------------


def chunk_files(data_dir: Path) -> dict[Path, bytes]:
    return {
        p: p.read_bytes()
        for p in (data_dir / "chunks").rglob("*")
        if p.is_file() and p.parent.name != "tmp"
    }


def chunk_path(data_dir: Path, data: bytes) -> Path:
    name = hashlib.sha256(data).hexdigest()
    return data_dir / "chunks" / name[:2] / name[2:]


@pytest.mark.parametrize("damage", [cut_to_half, garbage], ids=["cut to half", "garbage"])
def test_recovery_sets_the_catalog_aside_keeps_good_chunks_and_starts_afresh(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    files = filled(tmp_path)
    catalog = tmp_path / "catalog.sqlite3"
    damage(catalog)
    damaged = catalog.read_bytes()
    chunks = chunk_files(tmp_path)
    rotten = chunk_path(tmp_path, files["file-0.bin"][:CHUNK])
    rotten.write_bytes(b"rot" + chunks[rotten][3:])
    started = datetime.now(UTC).replace(microsecond=0)

    store = NodeStore(tmp_path, recover_damaged=True)

    assert store.recovery is not None
    assert (store.recovery.kept, store.recovery.removed) == (len(chunks) - 1, 1)
    (aside,) = [p for p in tmp_path.iterdir() if STAMP.fullmatch(p.name)]
    assert aside == store.recovery.set_aside
    stamp = datetime.strptime(aside.name.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ")
    assert started <= stamp.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert aside.read_bytes() == damaged
    # Good chunks kept as they were (the start-up sweep did not take them), the rotten
    # one deleted.
    assert chunk_files(tmp_path) == {p: b for p, b in chunks.items() if p != rotten}
    # The fresh catalog knows no file, and works: a file whose chunks were kept needs no
    # bytes stored again, only its commit.
    assert store.manifests() == []
    name, data = "file-1.bin", files["file-1.bin"]
    digests = tuple(hashlib.sha256(data[i : i + CHUNK]).digest() for i in (0, CHUNK))
    assert all(store.has_chunk(d) for d in digests)
    store.commit(Manifest(name, len(data), hashlib.sha256(data).digest(), CHUNK, digests, 1.0))
    store.close()

    # The next start finds a sound catalog with that file, and sweeps the kept chunks that
    # nothing claimed.
    again = NodeStore(tmp_path)
    assert again.recovery is None
    assert [m.name for m in again.manifests()] == [name]
    assert b"".join(again.read_chunk(d) for d in digests) == data
    assert set(again.chunks.digests()) == set(digests)


def test_recovering_a_sound_catalog_changes_nothing_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = filled(tmp_path)
    chunks = chunk_files(tmp_path)
    with caplog.at_level(logging.INFO, logger="chordshare.storage"):
        store = NodeStore(tmp_path, recover_damaged=True)
    assert store.recovery is None
    assert sorted(m.name for m in store.manifests()) == sorted(files)
    assert chunk_files(tmp_path) == chunks
    assert not list(tmp_path.glob("*.damaged-*"))
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert said == [f"catalog {tmp_path / 'catalog.sqlite3'} is sound: nothing to recover"]


def test_a_fresh_data_directory_is_not_damaged(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "new", recover_damaged=True)
    assert store.recovery is None and store.manifests() == []


def test_set_aside_names_by_utc_time_takes_the_logs_along_and_never_overwrites(
    tmp_path: Path,
) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    catalog = tmp_path / "catalog.sqlite3"
    names = []
    for content in (b"first", b"second"):
        catalog.write_bytes(content)
        # Its log files go with it: SQLite would replay an old log into a fresh catalog.
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{catalog}{suffix}").write_bytes(content + suffix.encode())
        names.append(set_aside(catalog, when).name)
    assert names == [
        "catalog.sqlite3.damaged-20260102T030405Z",
        "catalog.sqlite3.damaged-20260102T030405Z-1",
    ]
    for name, content in zip(names, (b"first", b"second"), strict=True):
        assert (tmp_path / name).read_bytes() == content
        for suffix in ("-wal", "-shm", "-journal"):
            assert (tmp_path / f"{name}{suffix}").read_bytes() == content + suffix.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n + s for n in names for s in ("", "-wal", "-shm", "-journal")
    )
