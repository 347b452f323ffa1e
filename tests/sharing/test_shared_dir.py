"""`--share DIR` covers subfolders: every regular file under the directory is shared under
its relative path, links are followed only to files inside it, `.part` files and names the
rule refuses are left out, and a chunk is read only from the very file that was hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_for_answer, wait_until

from chordshare.files.messages import FileError
from chordshare.sharing.shared_dir import SharedDirectory


def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A shared folder with subfolders, links in and out, and files to leave out; and the
    folder outside it."""
    root, outside = tmp_path / "shared", tmp_path / "outside"
    (root / "photos" / "2024").mkdir(parents=True)
    outside.mkdir()
    (root / "top.txt").write_bytes(b"top" * 100)
    (root / "photos" / "2024" / "a.jpg").write_bytes(b"jpeg" * 5000)
    (root / "photos" / "2024" / "b.jpg.part").write_bytes(b"half a download")
    (root / "esc\x1bname.txt").write_bytes(b"a name the rule refuses")
    (root / "trailing " / "x.txt").parent.mkdir()
    (root / "trailing " / "x.txt").write_bytes(b"in a folder the rule refuses")
    (outside / "secret.txt").write_bytes(b"not shared")
    (root / "link-in.txt").symlink_to(root / "top.txt")
    (root / "link-out.txt").symlink_to(outside / "secret.txt")
    (root / "folder-out").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "node-data").mkdir()
    (root / "node-data" / "catalog.sqlite3").write_bytes(b"the node's own files")
    return root, outside


def test_files_in_subfolders_are_shared_under_their_relative_paths(tmp_path: Path) -> None:
    root, _ = tree(tmp_path)
    shared = SharedDirectory(root, skip=root / "node-data")
    names = sorted(f.manifest.name for f in shared.scan())
    assert names == ["link-in.txt", "photos/2024/a.jpg", "top.txt"]
    a = shared.named("photos/2024/a.jpg")
    assert a is not None and a.path == (root / "photos" / "2024" / "a.jpg").resolve()
    assert shared.read_chunk(a.manifest, 0) == (b"jpeg" * 5000)[: a.manifest.chunk_size]
    # Without the data directory left out, the node would share its own files.
    assert "node-data/catalog.sqlite3" in {f.manifest.name for f in SharedDirectory(root).scan()}


def test_a_link_put_in_place_of_a_shared_file_is_not_followed(tmp_path: Path) -> None:
    root, outside = tree(tmp_path)
    shared = SharedDirectory(root)
    shared.scan()
    a = shared.named("photos/2024/a.jpg")
    assert a is not None
    path = root / "photos" / "2024" / "a.jpg"
    stat = path.stat()
    path.unlink()
    (outside / "same-size").write_bytes(b"x" * stat.st_size)
    os.utime(outside / "same-size", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    path.symlink_to(outside / "same-size")
    with pytest.raises(OSError):
        shared.read_chunk(a.manifest, 0)
    # Looked at again, the link leads out of the folder: no longer shared.
    assert "photos/2024/a.jpg" not in {f.manifest.name for f in shared.scan()}


async def test_a_getter_gets_a_file_of_a_shared_subfolder(net: PeerNetwork, tmp_path: Path) -> None:
    root, _ = tree(tmp_path)
    ring = await net.ring(3)
    sharer = await net.start(join=ring[0].server.node.me.address, share=root)
    await wait_until(net.converged, 20, "4 peers to converge")
    getter = ring[1].files(ring[1].server.node)
    out = tmp_path / "got.jpg"

    async def got() -> bool:
        try:
            report = await getter.get("photos/2024/a.jpg", out)
        except FileError:
            return False  # not published yet
        return report.sources == {sharer.server.node.me.address: len(b"jpeg" * 5000)}

    await wait_for_answer(got, 10, "the shared subfolder's file")
    assert out.read_bytes() == b"jpeg" * 5000
    assert [e.name for e in await getter.search("2024")] == ["photos/2024/a.jpg"]
