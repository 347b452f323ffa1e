"""Repair never loses the last copy and never brings a removal back, on real peers:

- a node that holds a name it should not drops its copy only once the name's owner has
  confirmed holding that version (an owner out of room refuses the copy, and the extra
  holder keeps the only one);
- a removal beats an older copy that a stale holder offers, and only a newer put beats it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peernet import PeerNetwork, store_directly
from waiting import wait_until

from chordshare.files.messages import FileVersion
from chordshare.files.placement import file_key
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    peers = PeerNetwork(tmp_path / "nodes")
    yield peers
    await peers.close()


def owner_of(peers: list[SharingPeer], name: str) -> SharingPeer:
    """The name's owner by the ring's ids: the first node at or after its key."""
    space = peers[0].server.node.space
    key = file_key(space, name)
    ordered = sorted(peers, key=lambda p: p.server.node.me.id)
    return next((p for p in ordered if p.server.node.me.id >= key), ordered[0])


def held(peer: SharingPeer, name: str) -> bool:
    return peer.store.manifest(name) is not None


async def test_an_extra_holder_drops_its_copy_only_once_the_owner_has_it(
    network: PeerNetwork,
) -> None:
    # One copy a file (k = 1), and owners with room for the small file only.
    first = await network.start(replicas=1, max_store=20_000)
    for _ in range(2):
        await network.start(join=first.server.node.me.address, replicas=1, max_store=20_000)
    await wait_until(network.converged, 20, "a ring of 3")
    peers = network.live()
    names = {"small.bin": 5_000, "big.bin": 50_000}
    extra: dict[str, SharingPeer] = {}
    owners = {owner_of(peers, name) for name in names}
    for name, size in names.items():
        # Not an owner of either name: the small file's owner must have room for it.
        extra[name] = next(p for p in peers if p not in owners)
        data = hashlib.shake_256(name.encode()).digest(size)
        # As a node that once owned the key, before its quota was set this low.
        store = extra[name].store
        limit, store.max_bytes = store.max_bytes, None
        store_directly(extra[name], name, data)
        store.max_bytes = limit

    # The owner with room takes the small file, and then the extra copy goes.
    small_owner = owner_of(peers, "small.bin")
    await wait_until(lambda: held(small_owner, "small.bin"), 20, "the owner to take it")
    await wait_until(lambda: not held(extra["small.bin"], "small.bin"), 20, "the extra copy")

    # The owner refuses the big file for want of room: its only copy stays where it is,
    # round after round.
    big_holder = extra["big.bin"]
    assert big_holder.replicator is not None
    for _ in range(3):
        report = await big_holder.replicator.repair(may_drop=True)
        assert report.dropped == 0
        assert held(big_holder, "big.bin")
    assert not held(owner_of(peers, "big.bin"), "big.bin")


async def test_a_removal_beats_an_older_copy_offered_by_a_stale_holder(
    network: PeerNetwork, tmp_path: Path
) -> None:
    [peer] = [await network.start()]
    calls = GrpcFilePeers()
    try:
        client = FileClient(NodeRing(peer.server.node), calls)
        (tmp_path / "doc.txt").write_bytes(b"first draft")
        put = await client.put(tmp_path / "doc.txt")
        await client.remove("doc.txt")
    finally:
        await calls.close()
    assert peer.service is not None
    removed = peer.service.version_of("doc.txt")
    assert removed is not None and removed.deleted and removed.version > put.manifest.created

    stale = FileVersion("doc.txt", put.manifest.created, put.manifest.sha256)
    answer = await peer.service.offer([stale])
    assert "doc.txt" not in answer.wanted
    assert [(v.name, v.deleted, v.version) for v in answer.newer] == [
        ("doc.txt", True, removed.version)
    ]
    assert not held(peer, "doc.txt")

    # A put made after the removal is newer, and is wanted.
    later = FileVersion("doc.txt", removed.version + 1, hashlib.sha256(b"second").digest())
    assert (await peer.service.offer([later])).wanted == ("doc.txt",)
