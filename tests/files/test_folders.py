"""The folder manifest: its bytes decode to what was encoded; a path outside the folder,
two entries of one path, a file with something inside it, a link or too many entries are
refused; a replace removes exactly the files no longer in the folder."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files import folders, packs
from chordshare.files.folders import (
    MAGIC,
    BadFolder,
    Folder,
    FolderEntry,
    Found,
    check_plain_name,
    check_walk,
    decode,
    encode,
    folder_of,
    make_folder,
    record_name,
    removed_files,
    same_layout,
)
from chordshare.files.names import BadName

PART = st.text(
    st.characters(codec="utf-8", categories=["L", "N"], include_characters="-_. "),
    min_size=1,
    max_size=8,
).filter(lambda p: p.strip() == p and p not in (".", ".."))
PATH = st.lists(PART, min_size=1, max_size=3).map("/".join)
ID = st.binary(min_size=32, max_size=32)


@st.composite
def a_folder(draw: st.DrawFn) -> Folder:
    paths = draw(st.lists(PATH, max_size=12, unique=True))
    entries = []
    for path in paths:
        if draw(st.booleans()):
            size = draw(st.integers(0, 1 << 40))
            entries.append(FolderEntry(path, "file", draw(st.integers(0, 0o777)), size, draw(ID)))
        else:
            entries.append(FolderEntry(path, "dir", draw(st.integers(0, 0o777))))
    try:
        return make_folder("pics", entries)
    except BadFolder:  # a file with another path inside it, or NFC twins
        return make_folder("pics", [e for e in entries if e.kind == "dir"])


@given(a_folder())
def test_a_folder_decodes_to_what_was_encoded(folder: Folder) -> None:
    assert decode(encode(folder), "pics") == folder
    assert folder.size == sum(e.size for e in folder.entries if e.kind == "file")


def hostile(path: str, kind: str = "file") -> bytes:
    entry = {"path": path, "type": kind, "mode": 0o644, "size": 1, "id": "00" * 32}
    return MAGIC + json.dumps({"name": "pics", "entries": [entry]}).encode()


@pytest.mark.parametrize(
    "path", ["../x", "/etc/x", "a/../x", "a/./x", "a//x", "a\\..\\x", "", "x/", "a\x1bb"]
)
def test_a_path_outside_the_folder_is_refused(path: str) -> None:
    with pytest.raises(BadFolder):
        decode(hostile(path), "pics")


@pytest.mark.parametrize("kind", ["symlink", "link", "device"])
def test_an_entry_that_is_neither_file_nor_folder_is_refused(kind: str) -> None:
    with pytest.raises(BadFolder, match="a file or a folder"):
        decode(hostile("x", kind), "pics")


def test_two_entries_of_one_path_are_refused() -> None:
    one = FolderEntry("caf\u00e9.txt", "file", 0o644, 1, bytes(32))
    other = FolderEntry("cafe\u0301.txt", "file", 0o644, 1, bytes(32))
    with pytest.raises(BadFolder, match="two entries of one path"):
        make_folder("pics", [one, other])
    with pytest.raises(BadFolder, match="two entries of one path"):
        make_folder("pics", [one, FolderEntry("caf\u00e9.txt", "dir", 0o755)])


def test_a_file_with_a_path_inside_it_is_refused() -> None:
    with pytest.raises(BadFolder, match="is a file"):
        make_folder(
            "pics",
            [FolderEntry("a", "file", 0o644, 1, bytes(32)), FolderEntry("a/b", "dir", 0o755)],
        )


def test_too_many_entries_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folders, "MAX_ENTRIES", 3)
    entries = [FolderEntry(f"d{i}", "dir", 0o755) for i in range(4)]
    with pytest.raises(BadFolder, match="at most 3"):
        make_folder("pics", entries)
    with pytest.raises(BadFolder, match="at most 3"):
        check_walk("root", [Found(e.path, "dir", 0o755) for e in entries])
    assert len(make_folder("pics", entries[:3]).entries) == 3


def test_a_walk_refuses_a_link_and_a_special_file() -> None:
    with pytest.raises(BadFolder, match="root/a/l is a symbolic link"):
        check_walk("root", [Found("a", "dir", 0o755), Found("a/l", "symlink")])
    with pytest.raises(BadFolder, match="not a regular file"):
        check_walk("root", [Found("fifo", "other")])


def test_mode_bits_beyond_permissions_are_refused() -> None:
    with pytest.raises(BadFolder, match="mode"):
        make_folder("pics", [FolderEntry("x", "file", 0o4755, 1, bytes(32))])


def test_a_member_name_too_long_is_refused() -> None:
    with pytest.raises(BadFolder, match="at most 255 bytes"):
        make_folder("pics", [FolderEntry("x" * 252, "dir", 0o755)])


def test_a_folder_manifest_is_known_by_its_name() -> None:
    assert folder_of(record_name("photos/2024")) == "photos/2024"
    assert folder_of("photos") is None and folder_of(folders.FOLDER_SUFFIX) is None
    with pytest.raises(BadFolder, match="not a chordshare folder"):
        decode(b'{"name": "pics", "entries": []}', "pics")
    with pytest.raises(BadFolder, match="names folder"):
        decode(encode(make_folder("other", [])), "pics")


@given(PATH, st.integers(0, packs.LAST_PACK))
def test_a_plain_file_may_not_take_a_folders_manifest_or_pack_name(name: str, index: int) -> None:
    for kept in (record_name(name), packs.pack_name(name, index)):
        with pytest.raises(BadName, match="kept for folders'"):
            check_plain_name(kept)
    assert check_plain_name(name) == name
    # Only a folder's put writes these; names that merely look alike are any file's.
    for alike in (f"{name}.chordshare-pack-0{index}", f"{name}.chordshare-pack-", f"{name}-x"):
        assert check_plain_name(alike) == alike
    with pytest.raises(BadName):
        check_plain_name(name + "/..")  # and it is a new name first


@given(a_folder(), a_folder())
def test_a_replace_removes_exactly_the_files_no_longer_in_the_folder(
    old: Folder, new: Folder
) -> None:
    removed = set(removed_files(old, new))
    new_files = {e.path for e in new.files}
    assert removed == {f"pics/{e.path}" for e in old.files if e.path not in new_files}
    assert removed_files(None, new) == []


def test_the_same_layout_is_paths_kinds_and_sizes() -> None:
    folder = make_folder(
        "pics", [FolderEntry("a", "file", 0o644, 3, bytes(32)), FolderEntry("d", "dir", 0o755)]
    )
    assert same_layout(folder, [Found("a", "file", 0o600, 3), Found("d", "dir", 0o700)])
    assert not same_layout(folder, [Found("a", "file", 0o644, 4), Found("d", "dir", 0o755)])
    assert not same_layout(folder, [Found("a", "file", 0o644, 3)])
