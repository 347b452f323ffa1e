"""A node's store: content addressing, reference counts, quota, restarts and crashes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.files.manifest import Manifest
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import IncompleteFile, NodeStore, QuotaExceeded

CHUNK = 4
# Most tests here keep every chunk in a file of its own (small_chunk=0), to check the chunk
# files; the tests at the end check chunks small enough to live in the catalog.


def manifest_of(store: NodeStore, name: str, data: bytes, chunk: int = CHUNK) -> Manifest:
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    digests = tuple(store.put_chunk(p, hashlib.sha256(p).digest()) for p in pieces)
    return Manifest(name, len(data), hashlib.sha256(data).digest(), chunk, digests, time.time())


def read_back(store: NodeStore, name: str) -> bytes:
    manifest = store.manifest(name)
    assert manifest is not None
    return b"".join(store.read_chunk(d) for d in manifest.chunks)


def test_put_commit_read_and_restart(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    store.commit(manifest_of(store, "a.txt", b"hello world"))
    assert read_back(store, "a.txt") == b"hello world"
    store.close()
    again = NodeStore(tmp_path, small_chunk=0)  # a restarted node finds its files
    assert read_back(again, "a.txt") == b"hello world"
    assert [m.name for m in again.manifests()] == ["a.txt"]


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    store.commit(manifest_of(store, "one", b"abcdabcdabcd"))
    store.commit(manifest_of(store, "two", b"abcdabcdabcd"))
    assert len(store.chunks.digests()) == 1
    assert store.used_bytes() == 4
    assert [m.name for m in store.by_sha256(hashlib.sha256(b"abcdabcdabcd").digest())] == [
        "one",
        "two",
    ]
    store.remove("one")
    assert read_back(store, "two") == b"abcdabcdabcd"  # still referenced
    store.remove("two")
    assert store.chunks.digests() == []
    assert store.used_bytes() == 0


def test_second_put_of_a_name_replaces_it_and_frees_old_chunks(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    store.commit(manifest_of(store, "f", b"11112222"))
    store.commit(manifest_of(store, "f", b"22223333"))
    assert read_back(store, "f") == b"22223333"
    on_disk = set(store.chunks.digests())
    assert hashlib.sha256(b"1111").digest() not in on_disk
    assert hashlib.sha256(b"2222").digest() in on_disk  # shared by both versions


def test_a_chunk_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    with pytest.raises(ChunkError, match="does not match"):
        store.put_chunk(b"evil", hashlib.sha256(b"good").digest())
    assert store.chunks.digests() == []


def test_corruption_on_disk_is_detected(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    store.commit(manifest_of(store, "f", b"data"))
    digest = hashlib.sha256(b"data").digest()
    store.chunks.path_for(digest).write_bytes(b"rot!")
    with pytest.raises(ChunkError, match="corrupt"):
        store.read_chunk(digest)


def test_commit_needs_every_chunk(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    data = b"0123456789"
    manifest = manifest_of(store, "f", data)
    store.chunks.remove(manifest.chunks[1])
    with pytest.raises(IncompleteFile):
        store.commit(manifest)
    assert store.manifest("f") is None


def test_quota(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, max_bytes=10, small_chunk=0)
    store.commit(manifest_of(store, "f", b"12345678"))
    with pytest.raises(QuotaExceeded, match="quota of 10 bytes"):
        manifest_of(store, "g", b"abcdefgh")
    assert read_back(store, "f") == b"12345678"  # nothing else lost


def test_manifest_contradictions_are_refused(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=0)
    bad = Manifest("f", 9, b"\0" * 32, 4, (b"\0" * 32,), 0.0)  # 9 bytes need 3 chunks
    with pytest.raises(ValueError, match="3 chunks"):
        store.commit(bad)


def manifest_sending_missing(store: NodeStore, name: str, data: bytes) -> Manifest:
    """As a put does: only the chunks the store lacks are sent and stored."""
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    digests = tuple(hashlib.sha256(p).digest() for p in pieces)
    for piece, digest in zip(pieces, digests, strict=True):
        if not store.has_chunk(digest):
            store.put_chunk(piece, digest)
    return Manifest(name, len(data), hashlib.sha256(data).digest(), CHUNK, digests, time.time())


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcde"), st.binary(max_size=20)), max_size=25),
    st.sampled_from([0, 64]),
)
def test_reference_counts_match_a_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, bytes]], small_chunk: int
) -> None:
    """Puts (each sending only the chunks the store lacks, a replace included), removals,
    with chunks in files of their own or (small_chunk=64) in the catalog."""
    store = NodeStore(tmp_path_factory.mktemp("store"), small_chunk=small_chunk)
    model: dict[str, bytes] = {}
    for name, data in ops:
        if data == b"" and name in model:
            store.remove(name)
            del model[name]
        else:
            store.commit(manifest_sending_missing(store, name, data))
            model[name] = data
    for name, data in model.items():
        assert read_back(store, name) == data
    wanted = {
        hashlib.sha256(piece).digest(): len(piece)
        for d in model.values()
        for piece in (d[i : i + CHUNK] for i in range(0, len(d), CHUNK))
    }
    in_catalog = {d for d in wanted if store.catalog.small_chunk(d) is not None}
    assert set(store.chunks.digests()) | in_catalog == set(wanted)
    assert store.used_bytes() == sum(wanted.values())


WRITER = """
import hashlib, sys, time
from pathlib import Path
from chordshare.files.manifest import Manifest
from chordshare.storage.store import NodeStore
store = NodeStore(Path(sys.argv[1]), small_chunk=0)
i = 0
while True:
    data = hashlib.sha256(str(i).encode()).digest() * 2048
    pieces = [data[j:j + 16384] for j in range(0, len(data), 16384)]
    digests = tuple(store.put_chunk(p) for p in pieces)
    if i == 3:
        print("writing", flush=True)
    store.commit(Manifest(f"f{i}", len(data), hashlib.sha256(data).digest(), 16384,
                          digests, time.time()))
    i += 1
"""


def test_kill_during_puts_never_lists_a_partial_file(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    store = NodeStore(
        tmp_path, small_chunk=0
    )  # restart: leftovers of the interrupted put are collected
    manifests = store.manifests()
    assert len(manifests) >= 3
    for manifest in manifests:
        data = b"".join(store.read_chunk(d) for d in manifest.chunks)
        assert hashlib.sha256(data).digest() == manifest.sha256
    referenced = {d for m in manifests for d in m.chunks}
    assert set(store.chunks.digests()) == referenced
    assert list(store.chunks.tmp.iterdir()) == []


def test_small_chunks_live_in_the_catalog(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, small_chunk=64)
    store.commit(manifest_of(store, "one", b"abcdabcdabcd"))
    store.commit(manifest_of(store, "two", b"abcdabcdabcd"))
    assert store.chunks.digests() == []  # no chunk files: one commit per small file
    assert store.used_bytes() == 4  # and identical content kept once
    store.close()
    again = NodeStore(tmp_path, small_chunk=64)
    assert read_back(again, "two") == b"abcdabcdabcd"
    again.remove("one")
    assert read_back(again, "two") == b"abcdabcdabcd"
    again.remove("two")
    digest = hashlib.sha256(b"abcd").digest()
    assert again.catalog.small_chunk(digest) is None and not again.has_chunk(digest)
    assert again.used_bytes() == 0


def test_a_failed_small_put_leaves_nothing(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, max_bytes=6, small_chunk=64)
    digest = store.put_chunk(b"abcd", hashlib.sha256(b"abcd").digest())
    assert store.has_chunk(digest) and store.used_bytes() == 4
    with pytest.raises(QuotaExceeded):
        store.put_chunk(b"efgh", hashlib.sha256(b"efgh").digest())
    store.discard([digest])
    assert not store.has_chunk(digest) and store.used_bytes() == 0
    with pytest.raises(IncompleteFile):
        store.commit(Manifest("x", 4, digest, CHUNK, (digest,), time.time()))
    with pytest.raises(ChunkError, match="does not match"):
        store.put_chunk(b"evil", hashlib.sha256(b"good").digest())
    assert store.manifests() == []
