"""Versions a replace or a removal took a name from stay, by manifest id, for the store's
grace period: their chunks referenced, in the quota, then freed by a sweep."""

from __future__ import annotations

import time
from pathlib import Path

from chordshare.sharing.chunking import manifest_of
from chordshare.storage.store import NodeStore

BIG = 80 * 1024  # over the catalog's small-chunk limit: a chunk file of its own


def put(store: NodeStore, name: str, data: bytes) -> None:
    manifest = manifest_of(data, name, len(data), created=time.time())
    store.put_chunk(data, manifest.chunks[0])
    store.commit(manifest)


def chunk_files(store: NodeStore) -> int:
    return sum(1 for p in (store.data_dir / "chunks").rglob("*") if p.is_file())


def test_a_replaced_or_removed_version_is_kept_until_the_sweep_past_its_time(
    tmp_path: Path,
) -> None:
    store = NodeStore(tmp_path, keep_replaced=3600.0)
    first, second = b"a" * BIG, b"b" * BIG
    put(store, "plan.txt", first)
    old = store.manifest("plan.txt")
    assert old is not None
    put(store, "plan.txt", second)
    kept = store.retired(old.id)
    assert kept == old
    assert store.read_chunk(old.chunks[0]) == first
    assert store.catalog.stored_bytes() == 2 * BIG  # in the quota while kept
    newer = store.manifest("plan.txt")
    assert newer is not None
    store.remove("plan.txt", tombstone=newer.created + 1)
    assert store.retired(newer.id) == newer
    store.remove("gone.txt")  # a drop of nothing: no harm
    assert store.sweep_retired() == 0  # nothing past its time yet
    store.keep_replaced = 1e-9
    assert store.sweep_retired() == 2
    assert store.retired(old.id) is None and store.retired(newer.id) is None
    assert store.catalog.stored_bytes() == 0 and chunk_files(store) == 0
    store.close()


def test_a_drop_and_a_store_that_keeps_nothing_retire_nothing(tmp_path: Path) -> None:
    keeping = NodeStore(tmp_path / "a", keep_replaced=3600.0)
    put(keeping, "moved.txt", b"m" * BIG)
    held = keeping.manifest("moved.txt")
    assert held is not None
    keeping.remove("moved.txt")  # handed over to another holder, not removed
    assert keeping.retired(held.id) is None and keeping.catalog.stored_bytes() == 0
    keeping.close()

    plain = NodeStore(tmp_path / "b")
    put(plain, "plan.txt", b"a" * BIG)
    first = plain.manifest("plan.txt")
    assert first is not None
    put(plain, "plan.txt", b"b" * BIG)
    assert plain.retired(first.id) is None and plain.catalog.stored_bytes() == BIG
    plain.close()


def test_kept_versions_outlive_a_restart(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, keep_replaced=3600.0)
    put(store, "plan.txt", b"a" * BIG)
    old = store.manifest("plan.txt")
    assert old is not None
    put(store, "plan.txt", b"b" * BIG)
    store.close()
    again = NodeStore(tmp_path, keep_replaced=3600.0)  # its start sweeps unreferenced chunks
    assert again.retired(old.id) == old
    assert again.read_chunk(old.chunks[0]) == b"a" * BIG
    again.close()
