"""The scrubber: chunks damaged or lost on a node's disk are found by reading them again,
and healed from another holder. Real peers on loopback gRPC; passes are started by hand."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest
from peernet import PeerNetwork
from prometheus_client import CollectorRegistry, generate_latest
from waiting import wait_until

from chordshare.faces.metrics import PeerCollector
from chordshare.files.manifest import Manifest
from chordshare.sharing import scrub
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

CHUNK = 128 * 1024
BY_HAND = {"scrub_rate": 1e12, "scrub_first_after": 3600.0}  # passes only when a test asks


async def put_everywhere(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, peers: list[SharingPeer]
) -> tuple[bytes, Manifest]:
    """A 4-chunk file put through the first peer, once every peer holds a copy."""
    data = hashlib.shake_256(b"scrub").digest(4 * CHUNK)
    source = tmp_path / "kept.bin"
    source.write_bytes(data)
    client = FileClient(NodeRing(peers[0].server.node), files, replicas=len(peers))
    manifest = (await client.put(source, chunk_size=CHUNK)).manifest
    await wait_until(
        lambda: all(p.store.manifest("kept.bin") == manifest for p in peers),
        10,
        "every peer to hold the file",
    )
    return data, manifest


def rot(peer: SharingPeer, digest: bytes) -> None:
    path = peer.store.chunks.path_for(digest)
    path.write_bytes(b"bit rot" + path.read_bytes()[7:])


@pytest.fixture
async def files() -> GrpcFilePeers:
    peers = GrpcFilePeers(timeout=5.0)
    yield peers  # type: ignore[misc]
    await peers.close()


async def test_a_damaged_or_lost_chunk_is_healed_from_another_holder(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    first = await net.start(**BY_HAND)
    join = first.server.node.me.address
    peers = [first, await net.start(join=join, **BY_HAND), await net.start(join=join, **BY_HAND)]
    await wait_until(net.converged, 20, "3 peers to converge")
    data, manifest = await put_everywhere(net, files, tmp_path, peers)
    victim = peers[1]
    assert victim.scrubber is not None
    damaged, lost = manifest.chunks[1], manifest.chunks[3]
    # The holder asked first has a bad copy of the damaged chunk too: it is refused.
    asked_first = (await victim._other_holders(manifest))[0]
    holder = next(p for p in peers if p.server.node.me.address == asked_first)
    for peer in (victim, holder):
        rot(peer, damaged)
    victim.store.chunks.path_for(lost).unlink()
    users = [(p.rates.upload.moved, p.rates.download.moved) for p in peers]

    found = await victim.scrubber.scrub_pass()
    assert (found.checked_chunks, found.checked_bytes) == (4, 4 * CHUNK)
    assert (found.bad, found.healed, found.unhealed) == (2, 2, 0)
    assert victim.store.chunks.get(damaged, verify=True) == data[CHUNK : 2 * CHUNK]
    assert victim.store.chunks.get(lost, verify=True) == data[3 * CHUNK :]

    # Nothing left to heal; the totals add up over passes, and /metrics shows them.
    again = await victim.scrubber.scrub_pass()
    assert (again.checked_chunks, again.bad) == (4, 0)
    assert victim.scrubber.counts.passes == 2
    assert victim.scrubber.counts.checked_bytes == 8 * CHUNK
    # Its reads and heals were repair traffic, on both sides: no user's cap paid for them.
    assert [(p.rates.upload.moved, p.rates.download.moved) for p in peers] == users
    assert victim.rates.repair.moved >= (8 + 2) * CHUNK
    assert sum(p.rates.repair.moved for p in peers if p is not victim) >= 2 * CHUNK
    registry = CollectorRegistry()
    registry.register(PeerCollector(victim))
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith(("chordshare_scrub", "chordshare_rate_limit_bytes"))
    }
    assert values == {
        "chordshare_scrub_checked_bytes_total": 8 * CHUNK,
        'chordshare_scrub_bad_chunks_total{outcome="healed"}': 2,
        'chordshare_scrub_bad_chunks_total{outcome="unhealed"}': 0,
        **{
            f'chordshare_rate_limit_bytes_per_second{{traffic="{kind}"}}': 0
            for kind in ("download", "repair", "upload")
        },
    }


async def test_a_chunk_no_holder_can_give_is_dropped_and_reported(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alone = await net.start(**BY_HAND)
    _, manifest = await put_everywhere(net, files, tmp_path, [alone])
    assert alone.scrubber is not None
    damaged = manifest.chunks[2]
    rot(alone, damaged)

    with caplog.at_level(logging.WARNING, logger="chordshare.sharing.scrub"):
        found = await alone.scrubber.scrub_pass()
    assert (found.bad, found.healed, found.unhealed) == (1, 0, 1)
    # Dropped, as a put that meets a damaged chunk drops it: a put of the bytes sends it.
    assert not alone.store.has_chunk(damaged)
    assert alone.store.manifest("kept.bin") == manifest  # the file itself is kept
    assert "chunk 2 of 'kept.bin' is damaged or missing here and no other holder" in caplog.text

    # The next pass finds it missing and tries again; nothing else breaks.
    again = await alone.scrubber.scrub_pass()
    assert (again.checked_chunks, again.bad, again.unhealed) == (4, 1, 1)


async def test_chunks_kept_in_the_catalog_and_removed_files_are_left_alone(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    # No removed version kept for links: a removal frees its chunks at once.
    alone = await net.start(**BY_HAND, link_grace=0)
    client = FileClient(NodeRing(alone.server.node), files, replicas=1)
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 5000)
    await client.put(small)
    assert alone.scrubber is not None
    found = await alone.scrubber.scrub_pass()
    assert (found.checked_chunks, found.bad) == (0, 0)  # its one chunk lives in SQLite

    _, manifest = await put_everywhere(net, files, tmp_path, [alone])
    listed = alone.store.manifests()
    await client.remove("kept.bin")
    alone.store.manifests = lambda: listed  # type: ignore[method-assign]  # a stale listing
    found = await alone.scrubber.scrub_pass()
    assert found.bad == 0  # its chunks are gone, but so is the file: nothing to heal
    assert not any(alone.store.has_chunk(d) for d in manifest.chunks)


async def test_a_pass_keeps_to_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pacer sleeps so that bytes / rate seconds have passed, with a clock that does
    not move (so every second of it is a sleep asked for)."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(scrub.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(scrub.asyncio, "sleep", sleep)
    pacer = scrub._Pacer(rate=1_000_000)
    for _ in range(4):
        await pacer.after(250_000)
    assert slept == pytest.approx([0.25, 0.5, 0.75, 1.0])


async def test_a_rate_of_zero_means_no_scrubber(net: PeerNetwork) -> None:
    assert (await net.start(scrub_rate=0)).scrubber is None
    with pytest.raises(ValueError, match="positive"):
        scrub.Scrubber(None, None, None, None, rate=0)  # type: ignore[arg-type]


async def test_a_scrub_pass_keeps_to_the_repair_cap(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    """A repair cap below the scrub rate paces the scrubber's reads: 4 chunks of 128 KiB
    at 256 kB/s take about two seconds, not the instant the scrub rate would allow."""
    peer = await net.start(**BY_HAND, replicas=1, max_repair_rate=256_000)
    await put_everywhere(net, files, tmp_path, [peer])
    assert peer.scrubber is not None
    started = time.monotonic()
    found = await peer.scrubber.scrub_pass()
    took = time.monotonic() - started
    assert found.checked_bytes == 4 * CHUNK
    assert 1.6 <= took < 15, took
    assert peer.rates.repair.moved == 4 * CHUNK
