"""File names on real peers over loopback gRPC: a client's put of a name the new-name rule
refuses is INVALID_ARGUMENT and stores nothing; a peer's copy or offer of such a name is
refused with a warning unless marked legacy_name; a file a node stored under such a name
before the rule stays readable, repairable and removable across the ring."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from peernet import PeerNetwork, store_directly
from refused_names import ONE_OF_EACH_KIND
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    SMALL_PUT,
    FileError,
    FileVersion,
    OfferAnswer,
    PutHeader,
    Refusal,
)
from chordshare.files.names import BadName
from chordshare.files.placement import file_key
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.replication import RepairReport
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

CHUNK = 64 * 1024
NAMES_LOG = "chordshare.files.names"

REFUSED = ONE_OF_EACH_KIND


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers()
    yield grpc_peers
    await grpc_peers.close()


def address(peer: SharingPeer) -> str:
    return peer.server.node.me.address


async def chunks_of(data: bytes, chunk_size: int = CHUNK) -> AsyncIterator[tuple[int, bytes]]:
    for index, start in enumerate(range(0, len(data), chunk_size)):
        yield index, data[start : start + chunk_size]


def holders(net: PeerNetwork, name: str) -> list[SharingPeer]:
    return [p for p in net.live() if p.store.manifest(name) is not None]


def nothing_stored(peer: SharingPeer) -> bool:
    return peer.store.manifests() == [] and peer.store.used_bytes() == 0


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and repr(name) in r.getMessage()
    ]


@pytest.mark.parametrize(("char", "code"), REFUSED, ids=[c for _, c in REFUSED])
async def test_a_client_put_of_a_refused_name_is_invalid_argument_and_stores_nothing(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path, char: str, code: str
) -> None:
    peer = await net.start()
    name = f"bad{char}name.txt"
    small, large = b"a small file", bytes(range(256)) * (SMALL_PUT // 256 + 1)
    promise = replace(manifest_of(large, name, CHUNK), sha256=b"", chunks=())
    puts: list[tuple[PutHeader, bytes, Callable[[], Manifest] | None]] = [
        (PutHeader(manifest_of(small, name, CHUNK)), small, None),  # PutSmallFile
        (PutHeader(manifest_of(large, name, CHUNK)), large, None),  # PutFile
        (PutHeader(promise, manifest_last=True), large, lambda: manifest_of(large, name, CHUNK)),
    ]
    for header, data, trailer in puts:
        with pytest.raises(FileError) as refused:
            await peers.at(address(peer)).put_file(header, chunks_of(data), trailer)
        assert refused.value.refusal is Refusal.INVALID_ARGUMENT
        assert code in refused.value.message and char not in refused.value.message
    assert nothing_stored(peer)
    (tmp_path / "file").write_bytes(small)
    client = FileClient(NodeRing(peer.server.node), peers)
    with pytest.raises(BadName, match=code.replace("+", r"\+")):
        await client.put(tmp_path / "file", name=name)
    assert nothing_stored(peer)


async def test_a_peer_copy_of_a_refused_name_is_taken_only_when_marked(
    net: PeerNetwork, peers: GrpcFilePeers, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await net.start()
    name = "old\x1b[2Jname.txt"
    data = b"stored before names were checked"
    manifest = manifest_of(data, name, CHUNK)
    unmarked = PutHeader(manifest, replica=True)
    with caplog.at_level(logging.WARNING, logger=NAMES_LOG), pytest.raises(FileError) as refused:
        await peers.at(address(peer)).put_file(unmarked, chunks_of(data))
    assert refused.value.refusal is Refusal.INVALID_ARGUMENT
    assert nothing_stored(peer)
    assert warnings_about(caplog, name)

    # A client cannot claim the mark, even for a name the rule accepts.
    plain = manifest_of(data, "plain.txt", CHUNK)
    with pytest.raises(FileError) as claimed:
        await peers.at(address(peer)).put_file(PutHeader(plain, legacy_name=True), chunks_of(data))
    assert claimed.value.refusal is Refusal.INVALID_ARGUMENT
    assert nothing_stored(peer)

    marked = PutHeader(manifest, replica=True, legacy_name=True)
    outcome = await peers.at(address(peer)).put_file(marked, chunks_of(data))
    assert not outcome.unchanged
    assert peer.store.manifest(name) == manifest


async def test_an_offer_of_a_refused_name_is_wanted_only_when_marked(
    net: PeerNetwork, peers: GrpcFilePeers, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await net.start()
    name = "bidi\u202eevil.txt"
    data = b"held by an older node"
    manifest = manifest_of(data, name, CHUNK, created=5.0)
    offered = FileVersion(name, manifest.created, manifest.sha256)
    plain = FileVersion("plain.txt", 5.0, hashlib.sha256(b"x").digest())
    with caplog.at_level(logging.WARNING, logger=NAMES_LOG):
        answer = await peers.at(address(peer)).offer([offered, plain])
    assert answer.wanted == ("plain.txt",)
    assert warnings_about(caplog, name)
    answer = await peers.at(address(peer)).offer([replace(offered, legacy_name=True)])
    assert answer.wanted == (name,)

    # Its removal, too, is taken only when marked.
    marked = PutHeader(manifest, replica=True, legacy_name=True)
    await peers.at(address(peer)).put_file(marked, chunks_of(data))
    removal = FileVersion(name, 9.0, b"", deleted=True)
    await peers.at(address(peer)).offer([removal])
    assert peer.store.manifest(name) == manifest
    await peers.at(address(peer)).offer([replace(removal, legacy_name=True)])
    assert peer.store.manifest(name) is None
    assert peer.store.catalog.tombstone(name) == 9.0


async def test_a_file_stored_before_the_rule_is_read_repaired_and_removed(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    ring = await net.ring(4)
    name = "report\x1b[8m hidden\u202e.txt"
    space = ring[0].server.node.space
    key = file_key(space, name)
    ids = sorted(p.server.node.me.id for p in ring)
    first = next((i for i, ident in enumerate(ids) if ident >= key), 0)
    holder_ids = {ids[(first + j) % len(ids)] for j in range(3)}
    # Stored on the one node that is not among its holders: repair must carry it to the
    # owner, and the owner on to its successors, each passing the mark on.
    outsider = next(p for p in ring if p.server.node.me.id not in holder_ids)
    data = bytes(range(256)) * 40
    store_directly(outsider, name, data)

    def placed() -> bool:
        return {p.server.node.me.id for p in holders(net, name)} == holder_ids

    await wait_until(placed, 20, "repair to copy the file to its 3 holders")
    client = FileClient(NodeRing(outsider.server.node), peers)
    await client.get(name, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == data

    await client.remove(name)
    await wait_until(lambda: not holders(net, name), 10, "every copy to be removed")
    for peer in ring:
        if peer.server.node.me.id in holder_ids:
            assert peer.store.catalog.tombstone(name) is not None
    with pytest.raises(FileError) as gone:
        await client.find(name)
    assert gone.value.refusal is Refusal.NOT_FOUND


async def test_dots_inside_a_name_round_trip(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    a, b, _ = await net.ring(3)
    data = bytes(range(256)) * 7
    (tmp_path / "file").write_bytes(data)
    put = await FileClient(NodeRing(a.server.node), peers).put(tmp_path / "file", "v1..2.txt")
    assert put.manifest.name == "v1..2.txt"
    await FileClient(NodeRing(b.server.node), peers).get("v1..2.txt", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == data
    client = FileClient(NodeRing(a.server.node), peers)
    for whole in (".", ".."):
        with pytest.raises(BadName, match="cannot be"):
            await client.put(tmp_path / "file", whole)
        header = PutHeader(manifest_of(data, whole, CHUNK, created=time.time()))
        with pytest.raises(FileError) as refused:
            await peers.at(address(a)).put_file(header, chunks_of(data))
        assert refused.value.refusal is Refusal.INVALID_ARGUMENT
    assert [m.name for m in a.store.manifests()] == ["v1..2.txt"]


async def test_a_lookup_takes_any_name_a_node_may_hold(
    net: PeerNetwork, peers: GrpcFilePeers
) -> None:
    peer = await net.start()
    data = b"kept from before"
    store_directly(peer, "old\x1bname", data)
    found = await peers.at(address(peer)).find_file("old\x1bname", inline_up_to=len(data))
    assert found is not None and found.data == data
    assert await peers.at(address(peer)).find_file("never\x1bstored") is None
    for bad in ("a/../b", "/a", "..", ""):
        with pytest.raises(FileError) as refused:
            await peers.at(address(peer)).find_file(bad)
        assert refused.value.refusal is Refusal.INVALID_ARGUMENT


async def test_a_removal_answered_for_a_name_that_was_not_offered_is_ignored(
    net: PeerNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a peer could plant a tombstone under any name, which this node would then pass
    on marked legacy_name as one it holds."""
    peer = await net.start()
    assert peer.replicator is not None
    forged = FileVersion("forged\x1bname", 9.0, b"", deleted=True, legacy_name=True)
    mine = FileVersion("mine.txt", 9.0, b"", deleted=True)

    class Answering:
        async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
            return OfferAnswer((), (forged, mine))

    monkeypatch.setattr(peer.replicator.peers, "at", lambda address: Answering())
    offered = [FileVersion("mine.txt", 1.0, bytes(32))]
    await peer.replicator.reconcile("127.0.0.1:1", offered, RepairReport())
    assert peer.store.catalog.tombstone("mine.txt") == 9.0
    assert peer.store.catalog.tombstone("forged\x1bname") is None
