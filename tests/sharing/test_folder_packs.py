"""A folder's packs on disk: small files laid end to end with their SHA-256s, a file that
changed or became a link since the walk refused; a pack cut back into files, each checked
against its SHA-256 and written with its own mode bits whatever the umask, never through
a link, never over a file unless forced."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chordshare.files.folders import BadFolder, FolderEntry, Found
from chordshare.files.packs import Slot, plan_packs
from chordshare.sharing.folder_packs import read_entry, save_entries, umask, write_pack

TREE = {"a.txt": b"alpha\n", "b/empty": b"", "b/c.bin": bytes(range(256)) * 3, "d": b"dd"}


def make_tree(root: Path) -> list[Found]:
    for path, data in TREE.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return [Found(path, "file", 0o644, len(data)) for path, data in TREE.items()]


def test_a_pack_is_its_files_end_to_end_with_their_sha256s(tmp_path: Path) -> None:
    found = make_tree(tmp_path / "tree")
    (slots,) = plan_packs(found).packs
    digests = write_pack(tmp_path / "tree", slots, tmp_path / "pack")
    pack = (tmp_path / "pack").read_bytes()
    assert pack == b"".join(TREE[path] for path in sorted(TREE))
    assert digests == [hashlib.sha256(TREE[s.item.path]).digest() for s in slots]
    for slot in slots:
        assert pack[slot.offset : slot.offset + slot.item.size] == TREE[slot.item.path]


@pytest.mark.parametrize("changed", [b"alpha\n!", b"alpha", b""])
def test_a_file_that_changed_size_since_the_walk_is_refused(tmp_path: Path, changed: bytes) -> None:
    found = make_tree(tmp_path / "tree")
    (tmp_path / "tree/a.txt").write_bytes(changed)
    with pytest.raises(BadFolder, match="changed while the folder was being put"):
        write_pack(tmp_path / "tree", plan_packs(found).packs[0], tmp_path / "pack")


def test_a_file_replaced_by_a_link_since_the_walk_is_refused(tmp_path: Path) -> None:
    found = make_tree(tmp_path / "tree")
    (tmp_path / "secret").write_bytes(b"SECRET")  # as long as "alpha\n"
    (tmp_path / "tree/a.txt").unlink()
    (tmp_path / "tree/a.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(BadFolder, match=r"a\.txt"):
        write_pack(tmp_path / "tree", plan_packs(found).packs[0], tmp_path / "pack")
    assert b"SECRET" not in (tmp_path / "pack").read_bytes()


@pytest.mark.timeout(10)  # a read that waits on the FIFO fails here, not at the suite's limit
@pytest.mark.parametrize("path", ["a.txt", "b/empty"])
@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_a_file_replaced_by_a_fifo_or_a_folder_since_the_walk_is_refused(
    tmp_path: Path, path: str, what: str
) -> None:
    found = make_tree(tmp_path / "tree")
    (tmp_path / "tree" / path).unlink()
    if what == "fifo":
        os.mkfifo(tmp_path / "tree" / path)  # opening it to read would wait for a writer
    else:
        (tmp_path / "tree" / path).mkdir()
    with pytest.raises(BadFolder, match=path):
        write_pack(tmp_path / "tree", plan_packs(found).packs[0], tmp_path / "pack")


MODES = {"a.txt": 0o755, "b/empty": 0o640, "b/c.bin": 0o400, "d": 0o666}


def pack_of(tmp_path: Path) -> tuple[Path, list[FolderEntry], dict[str, Path]]:
    """A pack of TREE on disk, its entries and where each is saved under tmp_path/out."""
    found = make_tree(tmp_path / "tree")
    (slots,) = plan_packs(found).packs
    digests = write_pack(tmp_path / "tree", slots, tmp_path / "pack")
    entries = [packed(slot, digest) for slot, digest in zip(slots, digests, strict=True)]
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)
    return tmp_path / "pack", entries, {path: out / path for path in TREE}


def split_pack(
    pack: Path, entries: list[FolderEntry], targets: dict[str, Path], force: bool
) -> None:
    """Every entry cut out of the pack on disk, as a zip reads them, and saved."""
    fd = os.open(pack, os.O_RDONLY)
    try:
        done = [(entry, read_entry(fd, entry)) for entry in entries]
    finally:
        os.close(fd)
    save_entries(done, {p: str(t) for p, t in targets.items()}, force, umask())


def packed(slot: Slot, digest: bytes) -> FolderEntry:
    item = slot.item
    mode = MODES[item.path]
    return FolderEntry(
        item.path, "file", mode, item.size, pack=0, offset=slot.offset, sha256=digest
    )


@pytest.fixture
def strict_umask() -> Iterator[None]:
    before = os.umask(0o077)
    yield
    os.umask(before)


@pytest.mark.usefixtures("strict_umask")
def test_a_pack_is_cut_into_its_files_with_their_modes(tmp_path: Path) -> None:
    pack, entries, targets = pack_of(tmp_path)
    split_pack(pack, entries, targets, force=False)
    for path, data in TREE.items():
        assert targets[path].read_bytes() == data
        assert stat.S_IMODE(targets[path].stat().st_mode) == MODES[path]


def test_an_entry_past_the_end_of_its_pack_is_not_written(tmp_path: Path) -> None:
    """A pack shorter than the folder's manifest says: no file is saved cut short. (Its
    bytes are not hashed again: the pack's chunks were checked as they arrived.)"""
    pack, entries, targets = pack_of(tmp_path)
    last = entries[-1]
    with open(pack, "r+b") as cut:
        cut.truncate(last.offset + last.size - 1)
    with pytest.raises(BadFolder, match="past the end of its pack"):
        split_pack(pack, entries, targets, force=False)
    assert not targets[last.path].exists()


@pytest.mark.parametrize("force", [False, True])
def test_a_link_at_a_target_is_never_written_through(tmp_path: Path, force: bool) -> None:
    pack, entries, targets = pack_of(tmp_path)
    (tmp_path / "elsewhere").write_bytes(b"kept")
    targets["d"].symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        split_pack(pack, entries, targets, force=force)
    assert (tmp_path / "elsewhere").read_bytes() == b"kept"
    assert targets["d"].is_symlink()


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    pack, entries, targets = pack_of(tmp_path)
    targets["d"].write_bytes(b"mine, longer than the packed one")
    with pytest.raises(FileExistsError):
        split_pack(pack, entries, targets, force=False)
    assert targets["d"].read_bytes() == b"mine, longer than the packed one"
    (tmp_path / "other name").hardlink_to(targets["d"])
    split_pack(pack, entries, targets, force=True)
    assert targets["d"].read_bytes() == TREE["d"]
    # Replaced, not written into: another link to the old file keeps its bytes.
    assert (tmp_path / "other name").read_bytes() == b"mine, longer than the packed one"
