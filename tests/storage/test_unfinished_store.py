"""What a store keeps of puts that ended unfinished: one record a name, its chunks counted
in the quota and spared by the sweep at start, gone with the record that alone held them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from chordshare.files.manifest import Manifest
from chordshare.files.unfinished import UnfinishedPut
from chordshare.storage.store import NodeStore

CHUNK = 100  # over the store's small-chunk size below: each chunk is a file of its own


def chunk(n: int) -> bytes:
    return hashlib.shake_256(n.to_bytes(4, "big")).digest(CHUNK)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def store_in(path: Path) -> NodeStore:
    return NodeStore(path, small_chunk=10)


def kept(store: NodeStore, name: str, chunks: dict[int, bytes], size: int) -> UnfinishedPut:
    """What a put of `name` cut off keeps: `chunks` (index: bytes), stored first."""
    for data in chunks.values():
        store.put_chunk(data)
    held = tuple((i, digest(d)) for i, d in sorted(chunks.items()))
    record = UnfinishedPut(name, size, CHUNK, held, 1.0)
    store.keep_unfinished(record, [d for _, d in held])
    return record


def test_a_record_replaced_or_committed_frees_only_what_it_alone_held(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    try:
        first = kept(store, "a.bin", {0: chunk(0), 1: chunk(1)}, 4 * CHUNK)
        assert store.used_bytes() == 2 * CHUNK and store.unfinished("a.bin") == first
        # The same name cut off again: its record replaces the first.
        second = kept(store, "a.bin", {1: chunk(1), 2: chunk(2)}, 4 * CHUNK)
        assert store.unfinished_puts() == [second]
        assert set(store.chunks.digests()) == {digest(chunk(1)), digest(chunk(2))}
        assert store.used_bytes() == 2 * CHUNK
        # A commit of the name ends it: the chunks the file uses stay, the others go.
        store.put_chunk(chunk(3))
        sha = digest(chunk(2) + chunk(3))
        file = Manifest("a.bin", 2 * CHUNK, sha, CHUNK, (digest(chunk(2)), digest(chunk(3))), 2)
        store.commit(file)
        assert store.unfinished("a.bin") is None and store.unfinished_puts() == []
        assert set(store.chunks.digests()) == set(file.chunks)
        assert store.used_bytes() == 2 * CHUNK
    finally:
        store.close()


def test_kept_chunks_outlive_a_restart_and_go_with_their_record(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    record = kept(store, "b.bin", {0: chunk(0), 3: chunk(3)}, 5 * CHUNK)
    store.put_chunk(chunk(9))  # a chunk of a put the node's crash cut off: unreferenced
    store.close()
    again = store_in(tmp_path)  # sweeps what nothing references
    try:
        assert again.unfinished("b.bin") == record
        assert set(again.chunks.digests()) == {d for _, d in record.held}
        assert again.used_bytes() == 2 * CHUNK
        again.drop_unfinished(["b.bin", "never.bin"])
        assert again.unfinished_puts() == [] and again.chunks.digests() == []
        assert again.used_bytes() == 0
    finally:
        again.close()
