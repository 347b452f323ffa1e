"""Folders over real peers on loopback gRPC: a tree round-trips bit for bit with its modes,
empty files and empty folders; small files travel in packs, a large file is a plain file
of its own name, and one path is fetched alone either way; a replace drops the files no
longer in it; a removal takes them all; a folder manifest that was tampered with, or
names bytes no holder keeps any more, saves nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.folders import (
    MAGIC,
    BadFolder,
    FolderEntry,
    encode,
    make_folder,
    record_name,
)
from chordshare.files.messages import FileError, Refusal
from chordshare.files.packs import SMALL_FILE, pack_name
from chordshare.files.publisher import Signer
from chordshare.sharing.client import FileClient
from chordshare.sharing.folder_client import FolderClient
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


@pytest.fixture
async def files() -> AsyncIterator[GrpcFilePeers]:
    peers = GrpcFilePeers(timeout=5.0)
    yield peers
    await peers.close()


def make_tree(root: Path) -> dict[str, bytes]:
    """Nested folders, an empty file, an empty folder, unicode names, an executable."""
    tree = {
        "a.txt": b"alpha\n",
        "sub/b.bin": os.urandom(SMALL_FILE + 1),  # a file of its own; the rest are packed
        "sub/deeper/empty": b"",
        "ünï cødé/日本.txt": "日本語".encode(),
        "bin/run.sh": b"#!/bin/sh\necho hi\n",
    }
    for path, data in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "bin/run.sh").chmod(0o755)
    (root / "sub/b.bin").chmod(0o600)
    (root / "nothing here").mkdir()
    return tree


def tree_of(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under root: its kind, mode bits and bytes."""
    seen: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        relative = path.relative_to(root).as_posix()
        if path.is_dir():
            seen[relative] = ("dir", mode, b"")
        else:
            seen[relative] = ("file", mode, path.read_bytes())
    return seen


async def test_a_get_run_again_goes_on_where_one_cut_off_stopped(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peers = await net.ring(2)
    client = FileClient(NodeRing(peers[0].server.node), files, signer=Signer.generate())
    source = tmp_path / "source"
    make_tree(source)
    await FolderClient(client).put(source, "pics")
    back = tmp_path / "back"
    await FolderClient(client).get("pics", back)

    # What a get cut off leaves: files not written yet, one written in part.
    (back / "a.txt").unlink()
    (back / "bin/run.sh").write_bytes(b"#!/bin")
    (back / "sub/b.bin").unlink()  # a file of its own: fetched again
    fetched: list[int] = []
    find_pack = FolderClient.find_pack

    async def counted(self: FolderClient, folder: object, index: int) -> object:
        fetched.append(index)
        return await find_pack(self, folder, index)  # type: ignore[arg-type]

    monkeypatch.setattr(FolderClient, "find_pack", counted)
    await FolderClient(client).get("pics", back)
    assert tree_of(back) == tree_of(source) and fetched == [0]

    # Everything there already: nothing is fetched; a file with other bytes is refused.
    fetched.clear()
    await FolderClient(client).get("pics", back)
    assert fetched == []
    (back / "ünï cødé/日本.txt").write_bytes(b"mine, not the folder's")
    with pytest.raises(FileExistsError, match="--force"):
        await FolderClient(client).get("pics", back)
    assert (back / "ünï cødé/日本.txt").read_bytes() == b"mine, not the folder's"
    (back / "sub/b.bin").write_bytes(os.urandom(SMALL_FILE + 1))  # as long, other bytes
    (back / "ünï cødé/日本.txt").unlink()
    with pytest.raises(FileExistsError, match="--force"):
        await FolderClient(client).get("pics", back)
    await FolderClient(client).get("pics", back, force=True)
    assert tree_of(back) == tree_of(source)


async def test_a_tree_round_trips_packed_and_alone(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    peers = await net.ring(3)
    client = FileClient(NodeRing(peers[0].server.node), files, signer=Signer.generate())
    folders = FolderClient(client, width=8)
    source = tmp_path / "source"
    tree = make_tree(source)

    put = await folders.put(source, "pics")
    assert len(put.folder.files) == len(tree) and not put.unchanged
    assert len(put.folder.packs) == 1
    assert [e.path for e in put.folder.files if e.pack is None] == ["sub/b.bin"]
    again = await folders.put(source, "pics")
    assert again.unchanged

    other = FolderClient(FileClient(NodeRing(peers[2].server.node), files), width=8)
    await other.get("pics", tmp_path / "back")
    assert tree_of(tmp_path / "back") == tree_of(source)

    # A large file is a plain get of its name; a packed one is found through its folder
    # and fetched alone.
    await other.files.get("pics/sub/b.bin", tmp_path / "one")
    assert (tmp_path / "one").read_bytes() == tree["sub/b.bin"]
    inside = await other.find_path("pics/ünï cødé/日本.txt")
    assert inside is not None and inside[1].pack == 0
    await other.fetch(*inside, tmp_path / "two")
    assert (tmp_path / "two").read_bytes() == tree["ünï cødé/日本.txt"]
    assert await other.find_path("pics/no such file") is None

    # A replace drops the files no longer in the folder.
    (source / "a.txt").unlink()
    (source / "sub/b.bin").write_bytes(b"new bytes")
    with pytest.raises(FileError, match="--replace"):
        await folders.put(source, "pics")
    replaced = await folders.put(source, "pics", replace=True)
    assert replaced.removed == 1
    with pytest.raises(FileError) as gone:
        await client.find("pics/sub/b.bin")  # now packed: its file of its own is removed
    assert gone.value.refusal is Refusal.NOT_FOUND
    assert await other.find_path("pics/a.txt") is None
    await other.get("pics", tmp_path / "back2")
    assert tree_of(tmp_path / "back2") == tree_of(source)

    await folders.remove("pics")
    assert await folders.find("pics") is None
    with pytest.raises(FileError):
        await client.find(pack_name("pics", 0))


@pytest.mark.parametrize("replaced", ["sub/b.bin", pack_name("docs", 0)])
async def test_a_folder_gets_the_bytes_it_was_published_with_while_they_are_kept(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, replaced: str
) -> None:
    first = await net.start(link_grace=3600.0)
    await net.start(join=first.server.node.me.address, link_grace=0.0)
    await wait_until(net.converged, 20, "two peers to converge")
    client = FileClient(NodeRing(first.server.node), files, signer=Signer.generate())
    folders = FolderClient(client, width=4)
    source = tmp_path / "source"
    make_tree(source)
    put = await folders.put(source, "docs")
    (tmp_path / "x").write_bytes(b"not what was published")
    name = replaced if replaced.startswith("docs") else f"docs/{replaced}"
    await client.put(tmp_path / "x", name, replace=True)

    # One holder keeps the replaced bytes for links: the folder is got as published.
    await folders.get("docs", tmp_path / "back", folder=put.folder)
    assert tree_of(tmp_path / "back") == tree_of(source)

    # Once no holder keeps them, the get says so and leaves what it had not written.
    for peer in net.peers:
        peer.store.keep_replaced = 1e-9
        peer.store.sweep_retired()
    with pytest.raises(FileError, match="changed since this version was published"):
        await folders.get("docs", tmp_path / "back2", folder=put.folder)


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "a\\..\\x"])
async def test_a_hostile_folder_manifest_writes_nothing(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, path: str
) -> None:
    peers = await net.ring(2)
    client = FileClient(NodeRing(peers[0].server.node), files)
    hostile = (
        MAGIC
        + (
            '{"name":"evil","entries":[{"path":"ok.txt","type":"file","mode":420,"size":1,'
            f'"id":"{"00" * 32}"}},{{"path":"{path}","type":"file","mode":420,"size":1,'
            f'"id":"{"00" * 32}"}}]}}'
        )
        .replace("\\", "\\\\")
        .encode()
    )
    await client.put_bytes(record_name("evil"), hostile)
    dest = tmp_path / "inside" / "dest"
    with pytest.raises(BadFolder):
        await FolderClient(client).get("evil", dest)
    assert not (tmp_path / "inside").exists() and not (tmp_path / "x").exists()


async def test_a_path_through_a_link_in_the_destination_writes_nothing(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    peers = await net.ring(2)
    client = FileClient(NodeRing(peers[0].server.node), files)
    (tmp_path / "f").write_bytes(b"x")
    stored = await client.put(tmp_path / "f", "linked/sub/f")
    folder = make_folder("linked", [FolderEntry("sub/f", "file", 0o644, 1, stored.manifest.id)])
    await client.put_bytes(record_name("linked"), encode(folder))
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(BadFolder, match="symbolic link"):
        await FolderClient(client).get("linked", dest)
    assert list(outside.iterdir()) == []


async def test_a_tree_with_a_link_is_refused_before_anything_is_sent(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    peers = await net.ring(1)
    client = FileClient(NodeRing(peers[0].server.node), files)
    source = tmp_path / "source"
    make_tree(source)
    (source / "sub" / "link").symlink_to("/etc/passwd")
    with pytest.raises(BadFolder, match="symbolic link"):
        await FolderClient(client).put(source, "linky")
    assert peers[0].store.manifest("linky/a.txt") is None
