"""The folder manifest: its bytes decode to what was encoded, its packed files too, and a
manifest of every file on its own still decodes; a path outside the folder, two entries of
one path, a file with something inside it, a packed file outside its pack, a link or too
many entries are refused; a replace removes exactly the files no longer in the folder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files import folders, packs
from chordshare.files.folders import (
    MAGIC,
    MAGIC_V1,
    BadFolder,
    Folder,
    FolderEntry,
    Found,
    Pack,
    check_plain_name,
    check_walk,
    decode,
    encode,
    folder_of,
    make_folder,
    record_name,
    removed_files,
    same_layout,
    stored_names,
)
from chordshare.files.names import BadName
from chordshare.files.packs import SMALL_FILE

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
    packs = draw(st.lists(st.builds(Pack, ID, st.integers(0, 1 << 26)), max_size=3))
    entries = []
    for path in paths:
        mode = draw(st.integers(0, 0o777))
        kind = draw(st.sampled_from(["alone", "packed", "dir"] if packs else ["alone", "dir"]))
        if kind == "alone":
            size = draw(st.integers(0, 1 << 40))
            entries.append(FolderEntry(path, "file", mode, size, draw(ID)))
        elif kind == "packed":
            pack = draw(st.integers(0, len(packs) - 1))
            size = draw(st.integers(0, packs[pack].size))
            offset = draw(st.integers(0, packs[pack].size - size))
            entries.append(
                FolderEntry(path, "file", mode, size, pack=pack, offset=offset, sha256=draw(ID))
            )
        else:
            entries.append(FolderEntry(path, "dir", mode))
    try:
        return make_folder("pics", entries, packs)
    except BadFolder:  # a file with another path inside it, or NFC twins
        return make_folder("pics", [e for e in entries if e.kind == "dir"], packs)


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
    removed = removed_files(old, new)
    assert set(removed) == set(stored_names(old)) - set(stored_names(new))
    assert len(removed) == len(set(removed))
    assert removed_files(None, new) == []


def test_stored_names_are_the_packs_and_the_files_of_their_own() -> None:
    old = make_folder(
        "pics",
        [
            FolderEntry("a", "file", 0o644, 3, pack=0, sha256=bytes(32)),
            FolderEntry("b", "file", 0o644, 5, bytes(32)),
            FolderEntry("c", "file", 0o644, 5, bytes(32)),
            FolderEntry("d", "dir", 0o755),
            FolderEntry("d/e", "file", 0o644, 4, pack=2, sha256=bytes(32)),
        ],
        [Pack(bytes(32), 3), Pack(bytes(32), 0), Pack(bytes(32), 4)],
    )
    assert stored_names(old) == [
        "pics.chordshare-pack-0",
        "pics.chordshare-pack-1",
        "pics.chordshare-pack-2",
        "pics/b",
        "pics/c",
    ]
    # One pack fewer; b moved into a pack, c stays a file of its own.
    new = make_folder(
        "pics",
        [
            FolderEntry("a", "file", 0o644, 3, pack=0, sha256=bytes(32)),
            FolderEntry("b", "file", 0o644, 5, pack=1, sha256=bytes(32)),
            FolderEntry("c", "file", 0o644, 5, bytes(32)),
        ],
        [Pack(bytes(32), 3), Pack(bytes(32), 5)],
    )
    assert removed_files(old, new) == ["pics/b", "pics.chordshare-pack-2"]
    assert removed_files(new, old) == []


def test_a_manifest_of_files_on_their_own_decodes() -> None:
    body = {
        "name": "pics",
        "entries": [
            {"path": "a.txt", "type": "file", "mode": 0o644, "size": 5, "id": "ab" * 32},
            {"path": "d", "type": "dir", "mode": 0o755},
            {"path": "d/b", "type": "file", "mode": 0o600, "size": 0, "id": "cd" * 32},
        ],
    }
    folder = decode(MAGIC_V1 + json.dumps(body).encode(), "pics")
    assert folder.packs == ()
    assert folder.entries == (
        FolderEntry("a.txt", "file", 0o644, 5, bytes.fromhex("ab" * 32)),
        FolderEntry("d", "dir", 0o755),
        FolderEntry("d/b", "file", 0o600, 0, bytes.fromhex("cd" * 32)),
    )
    assert stored_names(folder) == ["pics/a.txt", "pics/d/b"]


def packed_manifest(entry: dict[str, Any], pack: dict[str, Any]) -> bytes:
    body = {"name": "pics", "packs": [pack], "entries": [entry]}
    return MAGIC + json.dumps(body).encode()


GOOD_ENTRY = {
    "path": "x",
    "type": "file",
    "mode": 0o644,
    "size": 4,
    "pack": 0,
    "offset": 6,
    "sha256": "11" * 32,
}
GOOD_PACK = {"id": "22" * 32, "size": 10}


def test_a_packed_file_of_the_largest_packed_size_decodes() -> None:
    largest = GOOD_ENTRY | {"size": SMALL_FILE, "offset": 0}
    assert decode(packed_manifest(largest, GOOD_PACK | {"size": SMALL_FILE}), "pics").files


def test_a_packed_file_inside_its_pack_decodes() -> None:
    folder = decode(packed_manifest(GOOD_ENTRY, GOOD_PACK), "pics")
    assert folder.packs == (Pack(bytes.fromhex("22" * 32), 10),)
    assert folder.entries == (
        FolderEntry("x", "file", 0o644, 4, pack=0, offset=6, sha256=bytes.fromhex("11" * 32)),
    )
    assert decode(encode(folder), "pics") == folder


@pytest.mark.parametrize(
    ("entry", "pack"),
    [
        ({"pack": 1}, {}),
        ({"pack": -1}, {}),
        ({"offset": -1}, {}),
        ({"offset": 7}, {}),  # 7 + 4 bytes: one past the pack's end
        ({"size": 5}, {}),
        ({"size": -1, "offset": 11}, {}),
        ({}, {"size": 9}),
        ({"sha256": None}, {}),
        ({"sha256": "11" * 31}, {}),
        ({"sha256": ""}, {}),
        ({"pack": True}, {}),
        ({"offset": False}, {}),
        ({"size": True}, {}),
        ({"offset": 6.0}, {}),
        ({}, {"size": True}),
        ({}, {"size": -1}),
        ({}, {"id": "22" * 31}),
        ({}, {"id": None}),
        ({}, {"id": "zz" * 32}),
        # Larger than any packed file: a reader may hold one whole in memory.
        ({"size": SMALL_FILE + 1, "offset": 0}, {"size": SMALL_FILE + 1}),
    ],
)
def test_a_packed_file_outside_its_pack_is_refused(
    entry: dict[str, Any], pack: dict[str, Any]
) -> None:
    hostile_entry = {k: v for k, v in (GOOD_ENTRY | entry).items() if v is not None}
    hostile_pack = {k: v for k, v in (GOOD_PACK | pack).items() if v is not None}
    with pytest.raises(BadFolder):
        decode(packed_manifest(hostile_entry, hostile_pack), "pics")


@pytest.mark.parametrize("pack", [Pack(bytes(31), 1), Pack(b"", 0), Pack(bytes(32), -1)])
def test_a_pack_without_a_32_byte_id_and_a_size_is_refused(pack: Pack) -> None:
    with pytest.raises(BadFolder, match="a pack needs"):
        make_folder("pics", [FolderEntry("d", "dir", 0o755)], [Pack(bytes(32), 1), pack])


def test_a_manifest_nested_past_the_parser_is_refused() -> None:
    with pytest.raises(BadFolder, match="malformed"):
        decode(MAGIC + b"[" * 200_000, "pics")


def test_the_same_layout_is_paths_kinds_and_sizes() -> None:
    folder = make_folder(
        "pics", [FolderEntry("a", "file", 0o644, 3, bytes(32)), FolderEntry("d", "dir", 0o755)]
    )
    assert same_layout(folder, [Found("a", "file", 0o600, 3), Found("d", "dir", 0o700)])
    assert not same_layout(folder, [Found("a", "file", 0o644, 4), Found("d", "dir", 0o755)])
    assert not same_layout(folder, [Found("a", "file", 0o644, 3)])
