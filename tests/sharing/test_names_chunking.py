"""File names, their keywords, and cutting files into hashed chunks."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.files.names import BadName, check_new_name, check_stored_name, keywords
from chordshare.sharing import chunking
from chordshare.sharing.chunking import (
    ManifestHasher,
    build_manifest,
    chunk_manifest,
    iter_chunks,
    read_for_put,
)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a" * 256, "at most 255 bytes"),
        ("é" * 128, "at most 255 bytes"),  # 256 bytes in UTF-8
        ("/dir/file", "start with '/'"),
        ("dir//file", "'//'"),
        ("dir/../file", "cannot be '..'"),
        ("dir\\file", "'\\\\'"),
        (".", "cannot be '.'"),
        ("..", "cannot be '..'"),
        ("nul\0byte", "NUL"),
        (" padded", "white space"),
    ],
)
def test_bad_names_are_refused_with_the_reason(name: str, why: str) -> None:
    for rule in (check_new_name, check_stored_name):
        with pytest.raises(BadName, match=why):
            rule(name)


@pytest.mark.parametrize(
    "name",
    [
        "q3-report.pdf",
        "a" * 255,
        "notes v2.txt",
        "é.md",
        "x",
        "v1..2.txt",
        "...",
        ".x",
        "photos/2024/a.jpg",
    ],
)
def test_good_names_pass(name: str) -> None:
    assert check_new_name(name) == check_stored_name(name) == name


def test_keywords_split_names_into_words() -> None:
    assert keywords("q3-report.pdf") == ["pdf", "q3", "report"]
    assert keywords("My_Holiday Photos (2).JPG") == ["2", "holiday", "jpg", "my", "photos"]


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), chunk_size=st.integers(min_value=1, max_value=1500))
def test_manifest_describes_the_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk_size: int
) -> None:
    path = tmp_path_factory.mktemp("f") / "file"
    path.write_bytes(data)
    manifest = build_manifest(path, "file", chunk_size)
    manifest.check()
    assert manifest.size == len(data)
    assert manifest.sha256 == hashlib.sha256(data).digest()
    pieces = list(iter_chunks(path, chunk_size))
    assert b"".join(pieces) == data
    assert manifest.chunks == tuple(hashlib.sha256(p).digest() for p in pieces)
    assert all(manifest.chunk_length(i) == len(p) for i, p in enumerate(pieces))


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=5000),
    chunk_size=st.integers(min_value=1, max_value=1500),
    keep_up_to=st.sampled_from([0, 2500, 5000]),
)
def test_a_file_read_for_a_put_has_the_manifest_of_its_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk_size: int, keep_up_to: int
) -> None:
    """A small file is hashed and kept at once; a larger one is hashed as it is read, chunk
    by chunk: either way, build_manifest's chunk hashes (the whole file's hash of a larger
    one is left to the owner)."""
    path = tmp_path_factory.mktemp("f") / "file"
    path.write_bytes(data)
    local = read_for_put(path, "file", chunk_size, keep_up_to)
    expected = replace(build_manifest(path, "file", chunk_size), created=0.0)
    assert (local.path, local.size, local.chunk_size) == (path, len(data), chunk_size)
    if len(data) <= keep_up_to:
        assert local.data == data
        assert local.manifest is not None and replace(local.manifest, created=0.0) == expected
        return
    assert local.manifest is None and local.data is None
    promise = local.promise(created=0.0)
    assert promise.chunk_count == len(expected.chunks)
    hasher = ManifestHasher(promise)
    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = [hasher.read_chunk(fd, i) for i in reversed(range(promise.chunk_count))]
    finally:
        os.close(fd)
    assert b"".join(reversed(pieces)) == data
    assert hasher.manifest() == replace(expected, sha256=b"")
    assert replace(chunk_manifest(path, "file", chunk_size), created=0.0) == replace(
        expected, sha256=expected.chunks[0] if len(expected.chunks) == 1 else b""
    )


REAL_SHA256 = hashlib.sha256


class CountingSha256:
    """hashlib.sha256 that counts the bytes it is fed."""

    fed = 0

    def __init__(self, data: bytes = b"") -> None:
        self._hash = REAL_SHA256()
        self.update(data)

    def update(self, data: bytes) -> None:
        CountingSha256.fed += len(data)
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()


def test_a_put_hashes_each_byte_of_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big"
    data = bytes(range(256)) * 4096  # 1 MiB: four chunks of 256 KiB
    path.write_bytes(data)
    monkeypatch.setattr(chunking.hashlib, "sha256", CountingSha256)
    chunk_manifest(path, "big", 256 * 1024)
    assert CountingSha256.fed == len(data)
    CountingSha256.fed = 0
    # A put streamed with its manifest last: the first chunk is hashed when the file is
    # looked at (to ask the owner whether it has it), the others as they are sent.
    local = read_for_put(path, "big", 256 * 1024, 0)
    assert local.first_chunk is not None
    hasher = ManifestHasher(local.promise(), {0: local.first_chunk})
    fd = os.open(path, os.O_RDONLY)
    try:
        for index in range(hasher.promise.chunk_count):
            hasher.read_chunk(fd, index)
    finally:
        os.close(fd)
    assert CountingSha256.fed == len(data)
    assert hasher.manifest().chunks == chunk_manifest(path, "big", 256 * 1024).chunks


def test_read_for_put_chooses_the_chunk_size_and_refuses_what_is_no_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "small").write_bytes(b"x" * 10)
    assert read_for_put(tmp_path / "small", "small", None, 64).manifest.chunk_size == 256 * 1024
    for not_a_file in (tmp_path / "missing", tmp_path, tmp_path / "small" / "below"):
        with pytest.raises(FileNotFoundError, match="no such file"):
            read_for_put(not_a_file, "x", None, 64)


def test_empty_file_has_no_chunks(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    manifest = build_manifest(path, "empty")
    assert manifest.size == 0 and manifest.chunks == ()
    manifest.check()


def test_chunk_size_follows_the_file_size() -> None:
    from chordshare.sharing.chunking import chunk_size_for

    kib, mib = 1024, 1024 * 1024
    assert chunk_size_for(0) == chunk_size_for(4 * kib) == 256 * kib
    assert chunk_size_for(64 * mib) == 256 * kib  # 256 chunks
    assert chunk_size_for(64 * mib + 1) == 512 * kib
    assert chunk_size_for(128 * mib) == 512 * kib
    assert chunk_size_for(256 * mib) == chunk_size_for(100 * 1024 * mib) == mib


def test_a_name_that_is_not_valid_text_is_refused() -> None:
    import pytest

    from chordshare.files.names import BadName, check_new_name, check_stored_name

    for rule in (check_new_name, check_stored_name):
        with pytest.raises(BadName, match="valid Unicode"):
            rule("a\udc80b")
