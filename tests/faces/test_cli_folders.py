"""Folders through the `chordshare` CLI, in processes of their own against real peers of
this process: `put DIR` and `get NAME` round-trip a tree bit for bit with its modes, one
path of it is a plain get, `ls` shows the folder with its file count and size, `rm` takes
it all; a folder with a symbolic link is refused in one line."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from clirun import run_cli as cli
from peernet import PeerNetwork
from trees import tree_of

from chordshare.files.folders import MAX_ENTRIES
from chordshare.files.packs import PACK_SUFFIX, SMALL_FILE, pack_name


async def test_a_folder_round_trips_through_the_cli(ring: PeerNetwork, tmp_path: Path) -> None:
    peers = await ring.ring(2)
    node = peers[1].server.node.me.address
    source = tmp_path / "my photos"
    (source / "2024" / "été").mkdir(parents=True)
    (source / "empty folder").mkdir()
    (source / "2024" / "été" / "plage.jpg").write_bytes(os.urandom(70_000))
    (source / "2024" / "empty.txt").write_bytes(b"")
    (source / "run.sh").write_bytes(b"#!/bin/sh\n")
    (source / "run.sh").chmod(0o751)

    code, out, err = await cli("put", str(source), "--name", "photos", "-n", node)
    assert code == 0, err
    assert "stored folder photos (3 file(s)" in out

    code, out, err = await cli("get", "photos", "-o", str(tmp_path / "back"), "-n", node)
    assert code == 0, err
    assert "got folder photos" in out
    assert tree_of(tmp_path / "back") == tree_of(source)

    code, out, err = await cli(
        "get", "photos/2024/été/plage.jpg", "-o", str(tmp_path / "one.jpg"), "-n", node
    )
    assert code == 0, err
    assert (tmp_path / "one.jpg").read_bytes() == (source / "2024/été/plage.jpg").read_bytes()

    code, out, err = await cli("ls", "--all", "--json", "-n", node)
    assert code == 0, err
    (folder,) = [f for f in json.loads(out)["files"] if f.get("kind") == "folder"]
    assert folder["name"] == "photos" and folder["files"] == 3
    assert folder["size"] == 70_000 + 10
    # Its pack is part of it, never a file of its own: not on the node that holds it either.
    assert [f["name"] for f in json.loads(out)["files"]] == ["photos"]
    assert peers[1].store.manifest(pack_name("photos", 0)) is not None
    code, out, err = await cli("ls", "--json", "-n", node)
    assert code == 0, err
    assert [f["name"] for f in json.loads(out)["files"]] == ["photos"]
    code, out, err = await cli("ls", "--all", "-n", node)
    assert "photos/  (folder, 3 file(s))" in out and PACK_SUFFIX not in out

    # The folder's name finds the folder; words of a path inside it find the file, with
    # the folder's words too.
    code, out, err = await cli("search", "photos", "--json", "-n", node)
    assert code == 0, err
    found = json.loads(out)["files"]
    assert [f["name"] for f in found] == ["photos"] and found[0]["kind"] == "folder"
    for words in (["run"], ["photos", "run"]):
        code, out, err = await cli("search", *words, "--json", "-n", node)
        assert code == 0, err
        assert "photos/run.sh" in {f["name"] for f in json.loads(out)["files"]}

    code, out, err = await cli("rm", "photos", "-n", node)
    assert code == 0, err
    assert "removed folder photos (3 file(s))" in out
    assert all(p.store.manifest("photos/run.sh") is None for p in peers)
    code, out, err = await cli("get", "photos", "-o", str(tmp_path / "gone"), "-n", node)
    assert code == 2 and "no file named 'photos'" in err


async def test_a_folder_with_a_link_is_refused_in_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"a")
    (source / "sub" / "passwd").symlink_to("/etc/passwd")
    code, _out, err = await cli("put", str(source), "-n", peer.server.node.me.address)
    assert code == 2
    assert err.strip().count("\n") == 0 and "sub/passwd is a symbolic link" in err
    assert peer.store.manifest("tree/a.txt") is None


async def test_a_folder_over_the_limit_or_with_colliding_paths_is_refused_in_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    big = tmp_path / "big"
    big.mkdir()
    for index in range(MAX_ENTRIES + 1):
        (big / f"{index}").touch()
    code, _, err = await cli("put", str(big), "-n", node)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert f"a folder holds at most {MAX_ENTRIES}" in err

    twins = tmp_path / "twins"
    twins.mkdir()
    (twins / "caf\u00e9.txt").write_bytes(b"composed")
    (twins / "cafe\u0301.txt").write_bytes(b"decomposed")
    code, _, err = await cli("put", str(twins), "-n", node)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "two entries of one path" in err
    assert peer.store.manifest("twins/caf\u00e9.txt") is None


async def test_a_put_under_a_name_kept_for_folders_is_refused_in_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "own.chordshare-pack-2").write_bytes(b"x")
    kept = ["x.chordshare-pack-0", "x.chordshare-folder"]
    runs = [cli("put", str(tmp_path / "file"), "--name", name, "-n", node) for name in kept]
    runs.append(cli("put", str(tmp_path / "own.chordshare-pack-2"), "-n", node))
    for code, _, err in await asyncio.gather(*runs):
        assert code == 2 and err.strip().count("\n") == 0, err
        assert "are kept for folders'" in err
    assert all(peer.store.manifest(n) is None for n in [*kept, "own.chordshare-pack-2"])


async def test_a_link_to_a_file_inside_a_pack_is_refused_in_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    source = tmp_path / "docs"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_bytes(b"packed")
    (source / "big.bin").write_bytes(os.urandom(SMALL_FILE + 1))
    code, _, err = await cli("put", str(source), "-n", node)
    assert code == 0, err

    code, out, err = await cli("link", "docs/sub/a.txt", "-n", node)
    assert code == 2 and not out and err.strip().count("\n") == 0, err
    assert "'docs/sub/a.txt' is a file inside folder 'docs'" in err
    assert "no link of its own; link the folder (chordshare link docs)" in err
    code, out, err = await cli("link", "docs/big.bin", "-n", node)  # a file of its own
    assert code == 0 and out.startswith("chordshare://"), err
    code, out, err = await cli("link", "docs", "-n", node)  # the folder itself
    assert code == 0 and "/docs.chordshare-folder?via=" in out, err
    code, _, err = await cli("link", "docs/sub/none.txt", "-n", node)
    assert code == 2 and "no file named 'docs/sub/none.txt'" in err, err
