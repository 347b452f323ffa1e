"""The index records the owner of a folder's manifest publishes: the manifest's own, and
one set for each file packed in the folder under `NAME/path` with its size and SHA-256
(a file of its own publishes its records itself); none for a pack; only its own for a
manifest that does not decode. A version of a manifest is read once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from chordshare.files.folders import FolderEntry, Pack, encode, make_folder, record_name
from chordshare.files.manifest import Manifest
from chordshare.files.messages import IndexEntry
from chordshare.files.packs import pack_name
from chordshare.files.search import index_records, packed_records
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.folder_index import FolderIndex
from chordshare.storage.store import NodeStore

A_SHA, B_SHA = bytes(range(32)), bytes(range(32, 64))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    store = NodeStore(tmp_path, small_chunk=0)  # every chunk a file: one can be lost
    yield store
    store.close()


def stored(store: NodeStore, name: str, data: bytes) -> Manifest:
    manifest = manifest_of(data, name, 64)  # a manifest of several chunks
    for index, digest in enumerate(manifest.chunks):
        store.put_chunk(data[index * 64 : (index + 1) * 64], digest)
    store.commit(manifest)
    return manifest


def a_folder(name: str = "pics") -> bytes:
    entries = [
        FolderEntry("a.txt", "file", 0o644, 3, pack=0, offset=0, sha256=A_SHA),
        FolderEntry("big report.bin", "file", 0o644, 5 << 20, bytes(32)),
        FolderEntry("d", "dir", 0o755),
        FolderEntry("d/quarterly notes.md", "file", 0o600, 7, pack=1, offset=2, sha256=B_SHA),
    ]
    return encode(make_folder(name, entries, [Pack(bytes(32), 3), Pack(bytes(32), 9)]))


NOTES = "d/quarterly notes.md"


def packed(name: str = "pics") -> list[object]:
    return [
        *packed_records(IndexEntry(f"{name}/a.txt", 3, A_SHA), "a.txt"),
        *packed_records(
            IndexEntry(f"{name}/d/quarterly notes.md", 7, B_SHA), "d/quarterly notes.md"
        ),
    ]


def test_a_folder_manifest_publishes_its_packed_files(store: NodeStore) -> None:
    manifest = stored(store, record_name("pics"), a_folder())
    assert len(manifest.chunks) > 1
    records = FolderIndex(store).records(manifest)
    assert records == index_records(manifest) + packed()
    names = {record.entry.name for record in records}
    assert names == {record_name("pics"), "pics/a.txt", "pics/d/quarterly notes.md"}
    keys = {r.key for r in records if r.entry.name == "pics/d/quarterly notes.md"}
    assert keys >= {"word:quarterly", "word:notes", "word:d"}
    # The folder's own words find the folder, not every file in it; no content records.
    assert "word:pics" not in keys and not any(k.startswith("sha256") for k in keys)


def test_a_pack_publishes_nothing_and_a_file_its_own_records(store: NodeStore) -> None:
    folders = FolderIndex(store)
    pack = stored(store, pack_name("pics", 0), b"abc")
    assert folders.records(pack) == []
    plain = stored(store, "pics/big report.bin", b"plain bytes")
    assert folders.records(plain) == index_records(plain)
    # A file that only carries the suffix is no folder: its own records only.
    assert folders.records_of([pack, plain]) == {pack.name: [], plain.name: index_records(plain)}


@pytest.mark.parametrize(
    "data",
    [b"not a folder at all", a_folder("other"), a_folder()[:-1], a_folder()[:20] + b"[" * 10**5],
)
def test_a_manifest_that_does_not_decode_publishes_its_own_records(
    store: NodeStore, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    manifest = stored(store, record_name("pics"), data)
    caplog.set_level(logging.WARNING, logger="chordshare.sharing.folder_index")
    assert FolderIndex(store).records(manifest) == index_records(manifest)
    assert any("'pics' is not indexed" in message for message in caplog.messages)


def test_a_version_is_read_once_until_it_is_no_longer_kept(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = stored(store, record_name("pics"), a_folder())
    other = stored(store, record_name("docs"), a_folder("docs"))
    reads: list[bytes] = []
    read_chunk = store.read_chunk

    def counted(digest: bytes, verify: bool = True) -> bytes:
        reads.append(digest)
        return read_chunk(digest, verify)

    monkeypatch.setattr(store, "read_chunk", counted)
    folders = FolderIndex(store)
    for _ in range(3):
        assert folders.records(first) == index_records(first) + packed()
        assert folders.records(other) == index_records(other) + packed("docs")
    assert len(reads) == len(first.chunks) + len(other.chunks)
    folders.keep_only([other])
    reads.clear()
    folders.records(other)
    assert reads == []
    assert folders.records(first) == index_records(first) + packed()
    assert reads == list(first.chunks)


def test_a_manifest_read_while_a_chunk_is_missing_is_read_again(
    store: NodeStore, caplog: pytest.LogCaptureFixture
) -> None:
    data = a_folder()
    manifest = stored(store, record_name("pics"), data)
    folders = FolderIndex(store)
    store.drop_chunk(manifest.chunks[1])  # found damaged: repair brings it back later
    caplog.set_level(logging.WARNING, logger="chordshare.sharing.folder_index")
    assert folders.records(manifest) == index_records(manifest)
    assert any("is not indexed" in message for message in caplog.messages)
    store.put_chunk(data[64:128], manifest.chunks[1])
    assert folders.records(manifest) == index_records(manifest) + packed()
