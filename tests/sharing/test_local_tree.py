"""Where a folder's get writes: every path under the destination, decided before anything
is written, without a look at the disk inside a folder that is not there yet; a link on
the way, a file where a folder goes or a folder where a file goes refused; a file there
already sorted out: kept when it is a packed file's very bytes, gone on with when
shorter (a get cut off), compared later when a file of its own as long, refused
otherwise (unless forced). Folders are then made and modes set, deepest first."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from chordshare.files.folders import BadFolder, Folder, FolderEntry, Pack, make_folder
from chordshare.sharing import local_tree
from chordshare.sharing.local_tree import make_folders, plan_targets, set_modes

ID = bytes(32)


def a_folder() -> Folder:
    return make_folder(
        "pics",
        [
            FolderEntry("a.txt", "file", 0o644, 1, ID),
            FolderEntry("d", "dir", 0o555),
            FolderEntry("d/e", "dir", 0o700),
            FolderEntry("d/e/f.bin", "file", 0o600, 2, pack=0, sha256=ID),
            FolderEntry("g/h", "file", 0o640, 1, ID),  # its folder is not an entry
            FolderEntry("empty", "dir", 0o750),
        ],
        [Pack(ID, 2)],
    )


EXPECTED = ["a.txt", "d", "d/e", "d/e/f.bin", "empty", "g/h"]


def no_look(place: str) -> str | None:
    raise AssertionError(f"looked at {place}: nothing is there to see")


def test_a_fresh_destination_needs_no_look(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_tree, "_kind", no_look)
    targets = plan_targets(a_folder(), tmp_path / "fresh" / "dest", force=False).targets
    assert targets == {path: str(tmp_path / "fresh" / "dest" / path) for path in EXPECTED}


def test_inside_a_folder_not_there_yet_nothing_is_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    looked: list[str] = []
    real = local_tree._kind

    def counted(place: str) -> str | None:
        looked.append(os.path.relpath(place, dest))
        return real(place)

    monkeypatch.setattr(local_tree, "_kind", counted)
    plan_targets(a_folder(), dest, force=False)
    assert sorted(looked) == ["a.txt", "d", "empty", "g"]


def test_an_existing_destination_of_other_files_is_planned_alike(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "d" / "e").mkdir(parents=True)
    (dest / "other").write_bytes(b"x")
    targets = plan_targets(a_folder(), dest, force=False).targets
    assert targets == {path: str(dest / path) for path in EXPECTED}


@pytest.mark.parametrize("link", ["d", "d/e", "g", "a.txt", "d/e/f.bin"])
@pytest.mark.parametrize("force", [False, True])
def test_a_link_on_the_way_is_refused(tmp_path: Path, link: str, force: bool) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / link).parent.mkdir(parents=True)
    outside.mkdir()
    (dest / link).symlink_to(outside)
    with pytest.raises(BadFolder, match="symbolic link"):
        plan_targets(a_folder(), dest, force=force)


def test_a_destination_that_is_a_link_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(BadFolder, match="symbolic link"):
        plan_targets(a_folder(), tmp_path / "link", force=True)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not a folder"):
        plan_targets(a_folder(), tmp_path / "file", force=True)


@pytest.mark.parametrize("where", ["d", "d/e", "g", "empty"])
@pytest.mark.parametrize("force", [False, True])
def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path, where: str, force: bool) -> None:
    dest = tmp_path / "dest"
    (dest / where).parent.mkdir(parents=True, exist_ok=True)
    (dest / where).write_bytes(b"x")
    with pytest.raises(BadFolder, match="is a file where the folder has a folder"):
        plan_targets(a_folder(), dest, force=force)


@pytest.mark.parametrize("where", ["a.txt", "g/h", "d/e/f.bin"])
@pytest.mark.parametrize("force", [False, True])
def test_a_folder_where_a_file_goes_is_refused(tmp_path: Path, where: str, force: bool) -> None:
    dest = tmp_path / "dest"
    (dest / where).mkdir(parents=True)
    with pytest.raises(BadFolder, match="is a folder where the folder has a file"):
        plan_targets(a_folder(), dest, force=force)


PACKED = b"packed bytes"


def with_bytes() -> Folder:
    digest = hashlib.sha256(PACKED).digest()
    return make_folder(
        "pics",
        [
            FolderEntry("alone", "file", 0o644, 5, ID),
            FolderEntry("packed", "file", 0o644, len(PACKED), pack=0, sha256=digest),
        ],
        [Pack(ID, len(PACKED))],
    )


@pytest.mark.parametrize(
    ("where", "there", "sorted_as"),
    [
        ("packed", PACKED, "kept"),  # an earlier get wrote it whole
        ("packed", PACKED[:3], "cut_short"),  # ...or was cut off writing it
        ("packed", b"", "cut_short"),
        ("packed", PACKED + b"!", None),  # longer: not the folder's
        ("packed", b"X" * len(PACKED), None),  # as long, other bytes
        ("alone", b"12345", "to_compare"),  # as long: compared with its manifest later
        ("alone", b"1234", None),  # a file of its own is never left cut short
    ],
)
def test_a_file_there_already_is_kept_gone_on_with_or_refused(
    tmp_path: Path, where: str, there: bytes, sorted_as: str | None
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / where).write_bytes(there)
    if sorted_as is None:
        with pytest.raises(FileExistsError, match="--force"):
            plan_targets(with_bytes(), dest, force=False)
    else:
        plan = plan_targets(with_bytes(), dest, force=False)
        sets = {"kept": plan.kept, "cut_short": plan.cut_short, "to_compare": plan.to_compare}
        assert {name: set(paths) for name, paths in sets.items()} == {
            name: {where} if name == sorted_as else set() for name in sets
        }
    forced = plan_targets(with_bytes(), dest, force=True)
    assert forced.targets[where] == str(dest / where)
    assert not (forced.kept or forced.cut_short or forced.to_compare)


def test_folders_are_made_and_modes_set_deepest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, dest = a_folder(), tmp_path / "dest"
    targets = plan_targets(folder, dest, force=False).targets
    make_folders(folder, targets, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "d",
        "d/e",
        "empty",
        "g",
    ]
    for path in ["a.txt", "g/h", "d/e/f.bin"]:
        Path(targets[path]).write_bytes(b"x")
        Path(targets[path]).chmod(0o604)
    order: list[str] = []
    chmod = os.chmod

    def recorded(path: Path, mode: int, *, follow_symlinks: bool = True) -> None:
        order.append(Path(path).relative_to(dest).as_posix())
        chmod(path, mode, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(os, "chmod", recorded)
    set_modes(folder, targets)
    monkeypatch.undo()
    # d/e inside read-only d: set before d, or a user other than root could not.
    assert order.index("d/e") < order.index("d")
    modes = {e.path: stat.S_IMODE(os.stat(targets[e.path]).st_mode) for e in folder.entries}
    assert modes == {
        "a.txt": 0o644,
        "d": 0o555,
        "d/e": 0o700,
        "d/e/f.bin": 0o604,  # packed: written with its bits, not set again
        "empty": 0o750,
        "g/h": 0o640,
    }
    os.chmod(dest / "d", 0o755)  # so that tmp_path can be removed
