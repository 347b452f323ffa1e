"""A client sends puts and gets straight to the node it guesses owns the name's key (its
route cache); the node refuses a guess for a key it does not own, and the client then looks
the owner up. Real peers on loopback gRPC."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.chord.messages import Neighbors, NodeRef
from chordshare.files.messages import FileError, PutHeader, Refusal
from chordshare.files.placement import file_key
from chordshare.sharing.chunking import build_manifest
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

CHUNK = 64 * 1024


class CountingRing:
    """A ring that counts the owner lookups made through it."""

    def __init__(self, ring: NodeRing) -> None:
        self.ring = ring
        self.space = ring.space
        self.lookups = 0

    async def owner(self, key: int) -> NodeRef:
        self.lookups += 1
        return await self.ring.owner(key)

    async def successors(self, node: NodeRef) -> list[NodeRef]:
        return await self.ring.successors(node)

    async def neighbors(self, node: NodeRef) -> Neighbors:
        return await self.ring.neighbors(node)


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers()
    yield grpc_peers
    await grpc_peers.close()


def counted_client(via: SharingPeer, peers: GrpcFilePeers) -> tuple[FileClient, CountingRing]:
    """A client on via's ring view, with a count of the lookups it makes."""
    lookups = CountingRing(NodeRing(via.server.node))
    return FileClient(lookups, peers), lookups


def ref(peer: SharingPeer) -> NodeRef:
    return peer.server.node.me


def owner_of(live: Sequence[SharingPeer], name: str) -> SharingPeer:
    key = file_key(live[0].server.node.space, name)
    owners = [p for p in live if p.server.node.state.owns(key)]
    assert len(owners) == 1, f"{len(owners)} peers own {name!r}"
    return owners[0]


def write(path: Path, size: int) -> bytes:
    data = hashlib.shake_256(path.name.encode()).digest(size)
    path.write_bytes(data)
    return data


async def one_chunk(data: bytes, chunk: int) -> AsyncIterator[tuple[int, bytes]]:
    for index in range(0, len(data), chunk):
        yield index // chunk, data[index : index + chunk]


@pytest.mark.parametrize("size", [1000, 5 * CHUNK + 7], ids=["small", "streamed"])
async def test_a_node_refuses_a_guess_for_a_key_it_does_not_own(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path, size: int
) -> None:
    ring = await net.ring(3)
    name = "report.pdf"
    owner = owner_of(ring, name)
    other = next(p for p in ring if p is not owner)
    data = write(tmp_path / name, size)
    manifest = build_manifest(tmp_path / name, name, CHUNK)
    guessed = PutHeader(manifest, owner_only=True)

    with pytest.raises(FileError) as refused:
        await peers.at(ref(other).address).put_file(guessed, one_chunk(data, CHUNK))
    assert refused.value.refusal is Refusal.OUT_OF_RANGE
    assert name in refused.value.message
    with pytest.raises(FileError) as refused:
        await peers.at(ref(other).address).find_file(name, owner_only=True)
    assert refused.value.refusal is Refusal.OUT_OF_RANGE
    # Nothing of it was kept: no file, no chunk, no bytes taken from the quota.
    assert other.store.manifest(name) is None
    assert not any(other.store.has_chunk(d) for d in manifest.chunks)
    assert other.store.used_bytes() == 0

    # The owner takes the same guess, and answers for the name once it has it.
    assert await peers.at(ref(owner).address).find_file(name, owner_only=True) is None
    outcome = await peers.at(ref(owner).address).put_file(guessed, one_chunk(data, CHUNK))
    assert outcome.manifest.sha256 == manifest.sha256
    found = await peers.at(ref(owner).address).find_file(name, owner_only=True)
    assert found is not None and found.manifest.sha256 == manifest.sha256


async def test_a_client_that_knows_the_ring_looks_nothing_up(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    ring = await net.ring(4)
    client, lookups = counted_client(ring[0], peers)
    client.routes.learn(ref(p) for p in ring)
    names = [f"notes-{i}.txt" for i in range(12)]
    for i, name in enumerate(names):
        write(tmp_path / name, 3000 if i % 2 else 3 * CHUNK)
        await client.put(tmp_path / name, chunk_size=CHUNK)
    for name in names:
        await client.get(name, tmp_path / f"{name}.out")
        assert (tmp_path / f"{name}.out").read_bytes() == (tmp_path / name).read_bytes()
        assert owner_of(ring, name).store.manifest(name) is not None
    assert lookups.lookups == 0
    assert {owner_of(ring, n) for n in names} != {ring[0]}  # several owners were guessed


async def test_a_wrong_guess_costs_a_lookup_and_teaches_the_owner(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    ring = await net.ring(4)
    client, lookups = counted_client(ring[0], peers)
    name = "wrong.bin"
    data = write(tmp_path / name, 2 * CHUNK + 1)
    owner = owner_of(ring, name)
    wrong = next(p for p in ring if p is not owner)
    client.routes.learn([ref(wrong)])  # every guess is `wrong` now

    await client.put(tmp_path / name, chunk_size=CHUNK)
    assert owner.store.manifest(name) is not None
    assert lookups.lookups == 1
    assert ref(owner) in client.routes.nodes()

    fresh = FileClient(lookups, peers)
    fresh.routes.learn([ref(wrong)])
    await fresh.get(name, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert lookups.lookups == 2


async def test_a_guess_that_does_not_answer_is_forgotten(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    ring = await net.ring(3)
    client, lookups = counted_client(ring[0], peers)
    name = "gone.txt"
    data = write(tmp_path / name, 500)
    key = file_key(lookups.space, name)
    nobody = NodeRef(key, "127.0.0.1:1")  # the guess for the key itself; nothing listens
    client.routes.learn([nobody])
    await client.put(tmp_path / name)
    assert nobody not in client.routes.nodes()
    assert owner_of(ring, name).store.manifest(name) is not None

    client.routes.learn([nobody])
    await client.get(name, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert nobody not in client.routes.nodes()
    assert lookups.lookups == 2


async def test_after_a_join_the_old_owner_refuses_and_the_new_one_is_learnt(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    ring = await net.ring(3)
    client, lookups = counted_client(ring[0], peers)
    client.routes.learn(ref(p) for p in ring)  # the ring as it was
    joiner = await net.start(join=ref(ring[0]).address)
    await wait_until(net.converged, 20, "the joiner to be in the ring")
    name = next(
        n for n in (f"moved-{i}" for i in range(10_000)) if owner_of(net.live(), n) is joiner
    )
    write(tmp_path / name, 700)
    await client.put(tmp_path / name)
    assert joiner.store.manifest(name) is not None
    assert lookups.lookups == 1
    assert ref(joiner) in client.routes.nodes()
