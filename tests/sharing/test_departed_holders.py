"""A node that died or left stops being named as a holder or a sharer of a file (FindFile,
and so a get's sources and the listings) within three repair periods of the ring noticing.
Real peers on loopback gRPC, repairing every 0.5 s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_for_answer, wait_until

from chordshare.files.placement import file_key
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

REPAIR_PERIOD = 0.5


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers(timeout=5.0)
    yield grpc_peers
    await grpc_peers.close()


def owner_of(net: PeerNetwork, name: str) -> SharingPeer | None:
    """The live peer that owns name's key by its own view; None while none does (the
    owner just went, and its successor has not taken its predecessor yet)."""
    live = net.live()
    key = file_key(live[0].server.node.space, name)
    return next((p for p in live if p.server.node.state.owns(key)), None)


async def named_by_owner(net: PeerNetwork, peers: GrpcFilePeers, name: str) -> list[str] | None:
    """Whom the owner of name names as its holders (FindFile); None while it has no owner."""
    owner = owner_of(net, name)
    if owner is None:
        return None
    found = await peers.at(owner.server.node.me.address).find_file(name)
    return list(found.holders) if found is not None else []


@pytest.mark.parametrize("departure", ["crash", "leave"])
async def test_a_departed_holder_is_no_longer_named(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path, departure: str
) -> None:
    ring = await net.ring(5)
    source = tmp_path / "notes.txt"
    source.write_bytes(b"what the holders hold" * 100)
    client = FileClient(NodeRing(ring[0].server.node), peers)
    await client.put(source)

    async def holders() -> list[str] | None:
        return await named_by_owner(net, peers, "notes.txt")

    async def named(count: int) -> bool:
        found = await holders()
        return found is not None and len(found) == count

    await wait_for_answer(lambda: named(3), 10, "3 holders")
    owner = owner_of(net, "notes.txt")
    found = await holders()
    assert owner is not None and found is not None
    victim_address = next(h for h in found if h != owner.server.node.me.address)
    victim = next(p for p in net.live() if p.server.node.me.address == victim_address)
    await victim.stop(graceful=departure == "leave")
    await wait_until(lambda: victim_address not in _members(net), 10, "the ring to notice")

    async def forgotten() -> bool:
        found = await holders()
        return found is not None and victim_address not in found

    # Three repair periods, and a second for the rounds' own calls on a busy machine.
    await wait_for_answer(forgotten, 3 * REPAIR_PERIOD + 1.0, f"{victim_address} to be forgotten")
    await wait_for_answer(lambda: named(3), 10, "a third live holder again")


def _members(net: PeerNetwork) -> set[str]:
    """The addresses every live node's successor list and predecessor still name."""
    named: set[str] = set()
    for peer in net.live():
        state = peer.server.node.state
        named |= {n.address for n in state.successors}
        if state.predecessor is not None:
            named.add(state.predecessor.address)
    return named


@pytest.mark.parametrize("departure", ["crash", "leave"])
async def test_a_departed_sharer_is_no_longer_named(
    net: PeerNetwork, peers: GrpcFilePeers, tmp_path: Path, departure: str
) -> None:
    ring = await net.ring(4)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "song.ogg").write_bytes(b"la" * 5000)
    # Its locators live for three republish periods: far longer than the test waits.
    sharer = await net.start(join=ring[0].server.node.me.address, share=folder, republish=30.0)
    await wait_until(net.converged, 20, "5 peers to converge")
    sharer_address = sharer.server.node.me.address

    async def named() -> bool:
        found = await named_by_owner(net, peers, "song.ogg")
        return found is not None and sharer_address in found

    await wait_for_answer(named, 10, "the sharer to be named")
    await sharer.stop(graceful=departure == "leave")
    await wait_until(lambda: sharer_address not in _members(net), 10, "the ring to notice")

    async def forgotten() -> bool:
        found = await named_by_owner(net, peers, "song.ogg")
        return found is not None and sharer_address not in found

    await wait_for_answer(forgotten, 3 * REPAIR_PERIOD + 1.0, f"{sharer_address} to be forgotten")
