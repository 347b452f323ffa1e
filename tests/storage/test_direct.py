"""Writing and reading around the page cache: right bytes, whichever way each piece goes."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from required import unavailable

from chordshare.storage import direct
from chordshare.storage.direct import ALIGN, DirectFile

PIECE = 64 * 1024


def takes_o_direct(directory: Path) -> bool:
    if not direct.O_DIRECT:
        return False
    probe = directory / "probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | direct.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[Path, DirectFile]]:
    path = tmp_path / "file.part"
    file = DirectFile(path)
    yield path, file
    file.close()


@pytest.fixture
def pwrites(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors os.pwrite is called with."""
    used: list[int] = []
    real = os.pwrite

    def recording(fd: int, data: object, offset: int) -> int:
        used.append(fd)
        return real(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", recording)
    return used


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fed(file: DirectFile, length: int, offset: int) -> tuple[int, bytes]:
    sink = hashlib.sha256()
    return file.feed(sink, length, offset), sink.digest()


def test_aligned_pieces_go_around_the_page_cache(
    tmp_path: Path, opened: tuple[Path, DirectFile], pwrites: list[int]
) -> None:
    if not takes_o_direct(tmp_path):
        unavailable("this file system refuses O_DIRECT")
    path, file = opened
    assert file.direct
    pieces = [os.urandom(PIECE) for _ in range(4)]
    for index, piece in enumerate(pieces):
        file.write(memoryview(piece), index * PIECE)
    assert pwrites == [file.direct_fd] * 4
    assert path.read_bytes() == b"".join(pieces)
    assert fed(file, PIECE, 2 * PIECE) == (PIECE, sha(pieces[2]))


def test_unaligned_pieces_go_through_the_page_cache(
    opened: tuple[Path, DirectFile], pwrites: list[int]
) -> None:
    path, file = opened
    head, tail = os.urandom(PIECE), os.urandom(ALIGN + 100)  # a last chunk is any length
    file.write(head, 0)
    file.write(tail, PIECE)
    file.write(b"xy", 3)  # an unaligned offset
    assert pwrites[1:] == [file.fd, file.fd]
    expected = head[:3] + b"xy" + head[5:] + tail
    assert path.read_bytes() == expected
    assert fed(file, len(tail), PIECE) == (len(tail), sha(tail))
    # Past the end: what is there, and no more.
    assert fed(file, 2 * ALIGN, PIECE + ALIGN) == (100, sha(tail[ALIGN:]))


def test_a_file_system_refusing_o_direct_gets_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pwrites: list[int]
) -> None:
    real_open = os.open

    def refusing(path: object, flags: int, *args: object) -> int:
        if flags & direct.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(direct, "O_DIRECT", direct.O_DIRECT or 0x4000)
    monkeypatch.setattr(os, "open", refusing)
    file = DirectFile(tmp_path / "file.part")
    try:
        assert not file.direct
        data = os.urandom(PIECE)
        file.write(data, 0)
        assert pwrites == [file.fd]
        assert fed(file, PIECE, 0) == (PIECE, sha(data))
    finally:
        file.close()


def test_a_refused_direct_write_lands_through_the_page_cache(
    tmp_path: Path, opened: tuple[Path, DirectFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not takes_o_direct(tmp_path):
        unavailable("this file system refuses O_DIRECT")
    path, file = opened
    direct_fd = file.direct_fd
    real = os.pwrite

    def refuse_direct(fd: int, data: object, offset: int) -> int:
        if fd == direct_fd:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", refuse_direct)
    first, second = os.urandom(PIECE), os.urandom(PIECE)
    file.write(first, 0)
    assert not file.direct  # given up for good: the next write does not try again
    file.write(second, PIECE)
    assert path.read_bytes() == first + second


def test_a_direct_read_sees_what_the_page_cache_holds(
    tmp_path: Path, opened: tuple[Path, DirectFile]
) -> None:
    # A resumed download reads back chunks an earlier try wrote through the page cache,
    # maybe not yet on disk: the kernel writes them back before reading around the cache.
    if not takes_o_direct(tmp_path):
        unavailable("this file system refuses O_DIRECT")
    _, file = opened
    data = os.urandom(PIECE)
    os.pwrite(file.fd, data, PIECE)  # cached, not flushed
    assert fed(file, PIECE, PIECE) == (PIECE, sha(data))


def test_threads_writing_at_once_each_use_their_own_buffer(
    opened: tuple[Path, DirectFile],
) -> None:
    path, file = opened
    pieces = [os.urandom(PIECE) for _ in range(48)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: file.write(pieces[i], i * PIECE), range(len(pieces))))
    assert path.read_bytes() == b"".join(pieces)
    with ThreadPoolExecutor(max_workers=6) as pool:
        digests = list(pool.map(lambda i: fed(file, PIECE, i * PIECE)[1], range(len(pieces))))
    assert digests == [sha(p) for p in pieces]
