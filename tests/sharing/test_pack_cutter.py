"""Cutting a pack into its files as its bytes arrive: whatever the pieces or the order the
chunks land in, every file comes out whole and once, as soon as its last byte is in, with
its mode; a file finished before its target is known is saved once it is; a chunk that
fails its hash, a pack shorter than its files and a file that cannot be saved fail."""

from __future__ import annotations

import itertools
import random
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.files.folders import BadFolder, FolderEntry
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.folder_packs import PackCutter, PackSplitter


@st.composite
def a_pack(draw: st.DrawFn) -> tuple[bytes, list[FolderEntry]]:
    """Files laid out with gaps between some of them, as a folder's manifest may say."""
    sizes = draw(st.lists(st.integers(0, 300), max_size=20))
    entries, offset = [], 0
    for index, size in enumerate(sizes):
        offset += draw(st.sampled_from([0, 0, 0, 7]))
        entries.append(FolderEntry(f"f{index}", "file", 0o644, size, pack=0, offset=offset))
        offset += size
    data = draw(st.binary(min_size=offset, max_size=offset + 50))
    return data, entries


def cuts(length: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    bounds = sorted({0, length, *(rng.randrange(length + 1) for _ in range(rng.randrange(6)))})
    return list(itertools.pairwise(bounds)) or [(0, 0)]  # an empty pack is one empty piece


@given(a_pack(), st.integers(0, 1000))
def test_every_file_comes_out_whole_once_as_soon_as_it_is_in(
    pack: tuple[bytes, list[FolderEntry]], seed: int
) -> None:
    data, entries = pack
    cutter = PackCutter(entries)
    got: list[tuple[FolderEntry, bytes]] = []
    for start, end in cuts(len(data), seed):
        done = cutter.feed(data[start:end])
        for entry, _ in done:
            assert entry.offset + entry.size <= end  # never before its last byte
        finished = {e.path for e, _ in got + done}
        # ...and never later: every file that ends by here is out.
        assert finished == {e.path for e in entries if e.offset + e.size <= end}
        got += done
    assert not cutter.more
    assert [e.path for e, _ in got] == [e.path for e in entries]
    for entry, piece in got:
        assert piece == data[entry.offset : entry.offset + entry.size]
    assert len(cutter.held) <= max((e.size for e in entries), default=0) + len(data)


def splitter_of(
    data: bytes,
    entries: list[FolderEntry],
    chunk: int,
    root: Path,
    force: bool = False,
    cut_short: frozenset[str] = frozenset(),
) -> tuple[PackSplitter, list[tuple[int, bytes]]]:
    manifest = manifest_of(data, "pics.chordshare-pack-0", chunk)
    pieces = [(i, data[o : o + chunk]) for i, o in enumerate(range(0, len(data), chunk))]
    targets = {e.path: str(root / e.path) for e in entries}
    return PackSplitter(manifest, entries, targets, force, cut_short), pieces


@settings(max_examples=30, deadline=None)
@given(a_pack(), st.integers(0, 1000), st.integers(1, 64))
def test_chunks_landing_in_any_order_from_threads_save_every_file(
    pack: tuple[bytes, list[FolderEntry]], seed: int, chunk: int
) -> None:
    data, entries = pack
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        splitter, chunks = splitter_of(data, entries, chunk, root)
        random.Random(seed).shuffle(chunks)
        threads = [
            threading.Thread(target=lambda part=part: [splitter.write_checked(*c) for c in part])
            for part in (chunks[::2], chunks[1::2])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        splitter.finish(Path("pack"))
        splitter.close()
        for entry in entries:
            want = data[entry.offset : entry.offset + entry.size]
            assert (root / entry.path).read_bytes() == want
            assert stat.S_IMODE((root / entry.path).stat().st_mode) == entry.mode


def test_a_chunk_that_fails_its_hash_is_refused_and_cuts_nothing(tmp_path: Path) -> None:
    entries = [FolderEntry(f"f{i}", "file", 0o640, 10, pack=0, offset=10 * i) for i in range(4)]
    data = bytes(range(40))
    splitter, chunks = splitter_of(data, entries, 16, tmp_path)
    assert not splitter.write_checked(0, b"x" * 16)
    assert list(tmp_path.iterdir()) == []
    for index, piece in chunks:
        assert splitter.write_checked(index, piece)
    splitter.finish(Path("pack"))
    splitter.close()
    assert [(tmp_path / e.path).read_bytes() for e in entries] == [
        data[i : i + 10] for i in range(0, 40, 10)
    ]


def test_a_pack_that_ends_before_its_files_fails_the_finish(tmp_path: Path) -> None:
    entries = [FolderEntry("a", "file", 0o644, 8, pack=0, offset=0)]
    entries.append(FolderEntry("b", "file", 0o644, 8, pack=0, offset=8))
    splitter, chunks = splitter_of(bytes(12), entries, 4, tmp_path)
    for index, piece in chunks:
        splitter.write_checked(index, piece)
    with pytest.raises(BadFolder, match="ends before"):
        splitter.finish(Path("pack"))
    splitter.close()
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_files_of_no_bytes_come_out_of_an_empty_pack(tmp_path: Path) -> None:
    entries = [FolderEntry(f"e{i}", "file", 0o600, 0, pack=0, offset=0) for i in range(2)]
    splitter, chunks = splitter_of(b"", entries, 4, tmp_path)
    assert chunks == []
    splitter.finish(Path("pack"))
    splitter.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e0", "e1"]


def test_a_file_that_cannot_be_saved_fails_the_finish(tmp_path: Path) -> None:
    entries = [FolderEntry(f"f{i}", "file", 0o644, 4, pack=0, offset=4 * i) for i in range(3)]
    (tmp_path / "f1").write_bytes(b"mine")
    splitter, chunks = splitter_of(bytes(12), entries, 12, tmp_path)
    splitter.write_checked(*chunks[0])
    with pytest.raises(FileExistsError):
        splitter.finish(Path("pack"))
    splitter.close()
    assert (tmp_path / "f1").read_bytes() == b"mine"


def test_a_file_an_earlier_get_left_cut_short_is_written_whole_and_no_other(
    tmp_path: Path,
) -> None:
    data = b"0123456789abcdef"
    entries = [FolderEntry(f"f{i}", "file", 0o644, 8, pack=0, offset=8 * i) for i in range(2)]
    (tmp_path / "f0").write_bytes(data[:3])  # where the earlier get was cut off
    splitter, chunks = splitter_of(data, entries, 16, tmp_path, cut_short=frozenset({"f0"}))
    splitter.write_checked(*chunks[0])
    splitter.finish(Path("pack"))
    splitter.close()
    assert (tmp_path / "f0").read_bytes() == data[:8]

    (tmp_path / "f0").write_bytes(b"mine")  # shorter, but not the folder's bytes
    (tmp_path / "f1").unlink()
    splitter, chunks = splitter_of(data, entries, 16, tmp_path, cut_short=frozenset({"f0"}))
    splitter.write_checked(*chunks[0])
    with pytest.raises(FileExistsError, match="--force"):
        splitter.finish(Path("pack"))
    splitter.close()
    assert (tmp_path / "f0").read_bytes() == b"mine"
