"""Links from the command line: `chordshare link` prints one, and `chordshare get LINK`, in a
process given nothing else, fetches exactly those bytes, through the link's nodes, while
any holder keeps them; then it says they are gone. The CLI runs in processes of its own
against real peers of this process."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from clirun import run_bare_cli as cli
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.links import Link, parse_link
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


def holding(net: PeerNetwork, name: str) -> list[SharingPeer]:
    return [p for p in net.live() if p.store.manifest(name) is not None]


async def test_a_link_fetches_its_bytes_until_no_holder_keeps_them(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peers = await ring.ring(3)
    files = GrpcFilePeers(timeout=5.0)
    client = FileClient(NodeRing(peers[0].server.node), files)
    first = os.urandom(300_000)
    (tmp_path / "report.pdf").write_bytes(first)
    await client.put(tmp_path / "report.pdf")
    await wait_until(lambda: len(holding(ring, "report.pdf")) == 3, 10, "3 copies")

    node = peers[1].server.node.me.address
    code, out, err = await cli("link", "report.pdf", "-n", node, "--json", cwd=tmp_path)
    assert code == 0, err
    made = json.loads(out)
    link = parse_link(made["link"])
    assert link.name == "report.pdf" and made["needs_cluster_token"] is False
    assert link.manifest_id.hex() == made["manifest_id"]
    code, plain, _ = await cli("link", "report.pdf", "-n", node, cwd=tmp_path)
    assert plain.strip() == made["link"]

    # A machine that knows nothing else: the first node it is given does not answer.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dead = Link(link.manifest_id, link.name, ("127.0.0.1:1", *link.via))
    code, _, err = await cli("get", str(dead), "-o", "got.pdf", cwd=elsewhere)
    assert code == 0, err
    assert (elsewhere / "got.pdf").read_bytes() == first

    # Replaced: the link still names the first bytes, which the holders keep a while.
    (tmp_path / "report.pdf").write_bytes(b"the second report")
    await client.put(tmp_path / "report.pdf", replace=True)
    await wait_until(
        lambda: all(p.store.retired(link.manifest_id) for p in holding(ring, "report.pdf")),
        10,
        "every holder to keep the first version",
    )
    keepers = [p for p in ring.live() if p.store.retired(link.manifest_id)]
    for peer in keepers[:-1]:  # gone from all holders but one: the link still works
        peer.store.keep_replaced = 1e-9
        assert peer.store.sweep_retired() > 0
    code, _, err = await cli("get", made["link"], "-o", "again.pdf", cwd=elsewhere)
    assert code == 0, err
    assert (elsewhere / "again.pdf").read_bytes() == first

    keepers[-1].store.keep_replaced = 1e-9
    keepers[-1].store.sweep_retired()
    code, out, err = await cli("get", made["link"], "-o", "late.pdf", cwd=elsewhere)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and "the bytes this link names are gone" in err
    assert not (elsewhere / "late.pdf").exists()
    await files.close()


async def test_broken_links_are_one_line_and_exit_2(ring: PeerNetwork, tmp_path: Path) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    files = GrpcFilePeers(timeout=5.0)
    (tmp_path / "a.txt").write_bytes(b"some bytes")
    await FileClient(NodeRing(peer.server.node), files).put(tmp_path / "a.txt")
    await files.close()
    _, out, _ = await cli("link", "a.txt", "-n", node, cwd=tmp_path)
    good = parse_link(out.strip())
    other_bytes = Link(bytes(32), good.name, good.via)  # a link whose bytes do not match
    for broken, problem in [
        (str(good)[:40], "64 hexadecimal digits"),
        (str(good).split("?")[0], "names no node"),
        ("chordshare://nothing", "64 hexadecimal digits"),
        (str(other_bytes), "the bytes this link names are gone"),
        (str(Link(good.manifest_id, "b.txt", good.via)), "the bytes this link names are gone"),
    ]:
        code, out, err = await cli("get", broken, cwd=tmp_path)
        assert (code, out) == (2, ""), (broken, err)
        assert err.count("\n") == 1 and problem in err, (broken, err)
    code, _, err = await cli("get", "a.txt", cwd=tmp_path)
    assert code == 2 and "give --node" in err
    written = await asyncio.to_thread(os.listdir, tmp_path)
    assert sorted(written) == ["a.txt", "nodes"]  # nothing written
