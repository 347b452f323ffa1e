"""Links to folders from the command line: `chordshare link FOLDER` prints a link to the
folder's manifest file, and `chordshare get LINK`, in a process given nothing else,
recreates that very version of the folder, bit for bit, after a replace too while the
holders keep it; then it says the bytes are gone. The CLI runs in processes of its own
against real peers of this process."""

from __future__ import annotations

import json
import os
from pathlib import Path

from clirun import run_bare_cli as cli
from peernet import PeerNetwork
from trees import tree_of
from waiting import wait_until

from chordshare.files.folders import record_name
from chordshare.files.links import parse_link
from chordshare.files.packs import SMALL_FILE
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


def fill(root: Path, big: bytes, small: bytes) -> None:
    """A tree with a packed file, a file of its own, an empty folder and mode bits."""
    (root / "sub" / "empty").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "note.txt").write_bytes(small)
    (root / "big.bin").write_bytes(big)
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o751)


async def test_a_folders_link_gets_that_version_until_no_holder_keeps_it(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peers = await ring.ring(2)
    node = peers[1].server.node.me.address
    source = tmp_path / "trip"
    fill(source, os.urandom(SMALL_FILE + 1), b"first note")
    code, _, err = await cli("put", str(source), "--name", "holiday/trip", "-n", node, cwd=tmp_path)
    assert code == 0, err
    first = tree_of(source)

    code, out, err = await cli("link", "holiday/trip", "-n", node, "--json", cwd=tmp_path)
    assert code == 0, err
    made = json.loads(out)
    link = parse_link(made["link"])
    assert made["kind"] == "folder" and link.name == record_name("holiday/trip")
    code, plain, _ = await cli("link", "holiday/trip", "-n", node, cwd=tmp_path)
    assert plain.strip() == made["link"]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = await cli("get", made["link"], cwd=elsewhere)  # saved as ./trip
    assert code == 0, err
    assert out.startswith("got folder holiday/trip (3 file(s)") and "into trip" in out
    assert tree_of(elsewhere / "trip") == first

    # Replaced with other bytes: the link still names the first version, kept a while.
    (source / "sub" / "note.txt").write_bytes(b"second note, longer")
    (source / "big.bin").write_bytes(os.urandom(SMALL_FILE + 7))
    code, _, err = await cli(
        "put", str(source), "--name", "holiday/trip", "--replace", "-n", node, cwd=tmp_path
    )
    assert code == 0, err
    assert tree_of(source) != first
    await wait_until(
        lambda: any(p.store.retired(link.manifest_id) for p in ring.live()),
        10,
        "a holder to keep the first version",
    )
    code, out, err = await cli("get", made["link"], "-o", "old", "--json", cwd=elsewhere)
    assert code == 0, err
    assert json.loads(out)["kind"] == "folder"
    assert tree_of(elsewhere / "old") == first

    for peer in ring.live():  # the grace over
        peer.store.keep_replaced = 1e-9
        peer.store.sweep_retired()
    code, out, err = await cli("get", made["link"], "-o", "late", cwd=elsewhere)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and "the bytes this link names are gone" in err
    assert not (elsewhere / "late").exists()


async def test_a_link_to_what_is_not_a_folder_is_refused_in_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    files = GrpcFilePeers(timeout=5.0)
    client = FileClient(NodeRing(peer.server.node), files)
    await client.put_bytes(record_name("junk"), b"not a folder's manifest")
    await files.close()
    code, out, err = await cli("link", "junk", "-n", node, cwd=tmp_path)
    assert code == 0 and parse_link(out.strip()).name == record_name("junk"), err
    code, got, err = await cli("get", out.strip(), cwd=tmp_path)
    assert (code, got) == (2, ""), err
    assert err.count("\n") == 1 and "'junk' is not a chordshare folder" in err
    assert sorted(os.listdir(tmp_path)) == ["nodes"]  # nothing written
