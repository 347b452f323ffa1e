"""KeepFile: a client that got a file through a node asks it to keep a copy. The node looks
the version up itself, fetches it in the background into its download cache (under its
download cap), a few at a time, and keeps nothing when its cache is off, for a version it
cannot find, or for one it holds already. Real peers on loopback gRPC."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, KeepOutcome, Refusal
from chordshare.sharing.keeping import MAX_KEEPS
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.throttle import NodeRates
from chordshare.transport.files_grpc import GrpcFilePeers

KIB = 1024


def address(peer: SharingPeer) -> str:
    return peer.server.node.me.address


MAX_PUTS = 200


@pytest.fixture
async def calls() -> AsyncIterator[GrpcFilePeers]:
    peers = GrpcFilePeers()
    yield peers
    await peers.close()


async def put(peer: SharingPeer, tmp_path: Path, name: str, size: int) -> Manifest:
    path = tmp_path / name
    path.write_bytes(hashlib.shake_256(name.encode()).digest(size))
    return (await peer.files(peer.server.node).put(path)).manifest


async def puts_until(
    peers: list[SharingPeer], tmp_path: Path, size: int, enough: Callable[[list[Manifest]], bool]
) -> list[Manifest]:
    """Files put through the first peer, one after another, until `enough` of them (a
    ring whose nodes each own a fair share gets there in a few)."""
    manifests: list[Manifest] = []
    while not enough(manifests):
        assert len(manifests) < MAX_PUTS, f"{MAX_PUTS} puts did not land as the test needs"
        manifests.append(await put(peers[0], tmp_path, f"f{len(manifests)}.bin", size))
    return manifests


def unheld(via: SharingPeer, manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if via.store.manifest(m.name) is None]


def both(via: SharingPeer, manifests: list[Manifest]) -> bool:
    """Whether via stores some of the files and not others."""
    return 0 < len(unheld(via, manifests)) < len(manifests)


def kept_nothing(via: SharingPeer) -> bool:
    """Nothing cached, and no keep looked up or fetched."""
    assert via.service is not None and via.service.keeper is not None
    return via.cache.files == 0 and via.service.keeper.under_way == 0


async def ring(net: PeerNetwork, count: int, via: dict[str, object]) -> list[SharingPeer]:
    """`count` peers with one copy of each file, the last started with `via`'s settings:
    the node the tests ask to keep (it holds no key of theirs unless chance says so)."""
    first = await net.start(replicas=1)
    peers = [first]
    for index in range(1, count):
        settings = via if index == count - 1 else {}
        peers.append(await net.start(join=address(first), replicas=1, **settings))
    await wait_until(net.converged, 20, f"{count} peers to converge")
    return peers


async def test_a_kept_file_is_fetched_into_the_cache_under_the_download_cap(
    net: PeerNetwork, tmp_path: Path, calls: GrpcFilePeers
) -> None:
    peers = await ring(net, 3, {})
    via = peers[-1]
    manifests = await puts_until(peers, tmp_path, 300 * KIB, lambda ms: both(via, ms))
    manifest = next(m for m in manifests if via.store.manifest(m.name) is None)
    received = via.rates.download.moved  # the copies of the puts via holds came in so
    outcome = await calls.at(address(via)).keep_file(manifest.name, manifest.id)
    assert outcome is KeepOutcome.STARTED
    await wait_until(lambda: via.cache.keeps(manifest), 10, "the copy to be cached")
    await wait_until(lambda: via.cache.files == 1, 10, "the fetch to end")
    assert via.cache.used_bytes == manifest.size
    assert via.rates.download.moved - received >= manifest.size  # users' transfers' cap
    again = await calls.at(address(via)).keep_file(manifest.name, manifest.id)
    assert again is KeepOutcome.HELD
    stored = next(m for m in manifests if via.store.manifest(m.name) is not None)
    held = await calls.at(address(via)).keep_file(stored.name, stored.id)
    assert held is KeepOutcome.HELD and via.cache.files == 1


async def test_a_node_that_caches_nothing_keeps_nothing(
    net: PeerNetwork, tmp_path: Path, calls: GrpcFilePeers
) -> None:
    peers = await ring(net, 2, {"cache_bytes": 0})
    via = peers[-1]
    # One it stores and one it does not: it looks at neither.
    manifests = await puts_until(peers, tmp_path, 64 * KIB, lambda ms: both(via, ms))
    for manifest in manifests:
        outcome = await calls.at(address(via)).keep_file(manifest.name, manifest.id)
        assert outcome is KeepOutcome.OFF
    assert kept_nothing(via)


async def test_a_version_that_is_not_there_is_not_kept(
    net: PeerNetwork, tmp_path: Path, calls: GrpcFilePeers
) -> None:
    peers = await ring(net, 2, {})
    via = peers[-1]
    film = await put(peers[0], tmp_path, "film.mkv", 100 * KIB)
    other = await put(peers[0], tmp_path, "other.bin", 100 * KIB)
    node = calls.at(address(via))
    assert await node.keep_file("none.bin", film.id) is KeepOutcome.UNKNOWN
    # Another file's manifest id under film's name: not a version of film.
    assert await node.keep_file(film.name, other.id) is KeepOutcome.UNKNOWN
    assert await node.keep_file(film.name, bytes(32)) is KeepOutcome.UNKNOWN
    with pytest.raises(FileError) as refused:
        await node.keep_file(film.name, b"")
    assert refused.value.refusal is Refusal.INVALID_ARGUMENT
    assert kept_nothing(via)


async def test_keeps_beyond_the_bound_are_refused_for_now(
    net: PeerNetwork, tmp_path: Path, calls: GrpcFilePeers
) -> None:
    peers = await ring(net, 3, {})
    via = peers[-1]
    manifests = await puts_until(
        peers, tmp_path, 128 * KIB, lambda ms: len(unheld(via, ms)) >= MAX_KEEPS + 2
    )
    # Slow keeps, the puts done: each file takes the via node seconds under its cap.
    via.rates = NodeRates.of(download=64 * KIB)
    wanted = unheld(via, manifests)[: MAX_KEEPS + 2]
    node = calls.at(address(via))
    outcomes = [await node.keep_file(m.name, m.id) for m in wanted[: MAX_KEEPS + 1]]
    assert outcomes == [KeepOutcome.STARTED] * MAX_KEEPS + [KeepOutcome.NOT_NOW]
    await wait_until(lambda: via.cache.files == MAX_KEEPS, 30, "the keeps under way to end")
    last = wanted[-1]
    assert await node.keep_file(last.name, last.id) is KeepOutcome.STARTED
    await wait_until(lambda: via.cache.files == MAX_KEEPS + 1, 30, "a later keep to end")
    assert not via.cache.keeps(wanted[MAX_KEEPS])  # the one refused was dropped
