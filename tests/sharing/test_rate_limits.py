"""Rate limits where bytes move: a node's caps on what it sends and receives for users'
transfers, a client's own `--limit-rate`, and repair and scrubbing under a cap of their own
that never counts against the users' caps. Timings are lower bounds (a capped transfer is
never faster than its cap allows), with generous upper bounds only against a stall."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from peernet import PeerNetwork
from waiting import wait_until

from chordshare.faces.clients import Clients
from chordshare.files.messages import PutHeader
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import NodeRing
from chordshare.sharing.service import FileService
from chordshare.sharing.throttle import NodeRates, PacedPeers, Throttle
from chordshare.storage.store import NodeStore
from chordshare.transport.files_codec import put_header_from_pb, put_header_to_pb
from chordshare.transport.files_grpc import GrpcFilePeers

SIZE = 2_000_000  # bytes
CAP = 1_000_000  # bytes per second: SIZE takes about 2 s under it
AT_LEAST = 1.6  # seconds: SIZE at CAP, less the bucket's burst and a margin
STALLED = 15.0  # seconds: more than this is a stall, not a cap


def data(seed: int, size: int = SIZE) -> bytes:
    return hashlib.shake_256(str(seed).encode()).digest(size)


async def test_a_node_caps_what_it_receives_and_sends_for_users(
    net: PeerNetwork, tmp_path: Path
) -> None:
    peer = await net.start(max_upload_rate=CAP, max_download_rate=CAP, replicas=1)
    client = FileClient(NodeRing(peer.server.node), GrpcFilePeers())
    source = tmp_path / "big.bin"
    source.write_bytes(data(1))
    try:
        started = time.monotonic()
        await client.put(source)
        put_took = time.monotonic() - started
        started = time.monotonic()
        report = await client.get("big.bin", tmp_path / "back.bin")
        get_took = time.monotonic() - started
    finally:
        await client.peers.close()
    assert report.size == SIZE and (tmp_path / "back.bin").read_bytes() == data(1)
    assert AT_LEAST <= put_took < STALLED, put_took
    assert AT_LEAST <= get_took < STALLED, get_took
    rates = peer.rates
    assert rates.download.moved == SIZE and rates.upload.moved == SIZE
    assert rates.download.waited > 1 and rates.upload.waited > 1
    assert rates.repair.moved == 0


async def test_a_clients_limit_rate_caps_its_own_get(net: PeerNetwork, tmp_path: Path) -> None:
    peer = await net.start(replicas=1)  # the node itself has no cap
    source = tmp_path / "free.bin"
    source.write_bytes(data(2))
    free = FileClient(NodeRing(peer.server.node), GrpcFilePeers())
    try:
        started = time.monotonic()
        await free.put(source)
        uncapped = time.monotonic() - started
    finally:
        await free.peers.close()
    clients = await Clients.open(peer.server.node.me.address)
    try:
        capped = clients.files(rate=CAP)
        assert isinstance(capped.peers, PacedPeers)
        started = time.monotonic()
        await capped.get("free.bin", tmp_path / "got.bin")
        took = time.monotonic() - started
    finally:
        await clients.close()
    assert (tmp_path / "got.bin").read_bytes() == data(2)
    assert uncapped < AT_LEAST <= took < STALLED, (uncapped, took)
    assert capped.peers.send.moved == SIZE


async def chunks_of(payload: bytes, size: int) -> AsyncIterator[tuple[int, bytes]]:
    for index, start in enumerate(range(0, len(payload), size)):
        yield index, payload[start : start + size]


async def test_repair_and_scrub_traffic_is_counted_apart_from_users(tmp_path: Path) -> None:
    """Caps so low that a user's byte would wait for hours: repair pushes and a scrubber's
    heals pass at once, under the repair cap only."""
    rates = NodeRates.of(upload=1, download=1, repair=0)
    service = FileService("127.0.0.1:1", NodeStore(tmp_path / "store"), rates=rates)
    payload = data(3, 300_000)
    manifest = manifest_of(payload, "copy.bin", 100_000)
    header = PutHeader(manifest, replica=True, repair=True)
    async with asyncio.timeout(10):  # a user's cap would hold these bytes for hours
        await service.put_file(header, chunks_of(payload, 100_000))
        got = [c async for c in service.fetch_chunks(manifest.sha256, [0, 1, 2], repair=True)]
    assert b"".join(bytes(d) for _, d in got) == payload
    assert rates.repair.moved == 2 * len(payload)
    assert rates.upload.moved == rates.download.moved == 0
    await service.close()


async def test_a_puts_own_copy_is_a_users_transfer_and_a_clients_flag_is_not_trusted(
    tmp_path: Path,
) -> None:
    rates = NodeRates.of()
    service = FileService("127.0.0.1:1", NodeStore(tmp_path / "store"), rates=rates)
    payload = data(4, 200_000)
    manifest = manifest_of(payload, "put-copy.bin", 100_000)
    await service.put_file(PutHeader(manifest, replica=True), chunks_of(payload, 100_000))
    assert rates.download.moved == len(payload) and rates.repair.moved == 0
    # On the wire, a repair mark counts only on a replica: a client's put is a user's.
    claimed = put_header_from_pb(put_header_to_pb(PutHeader(manifest, repair=True)))
    assert claimed.repair is False
    pushed = put_header_from_pb(put_header_to_pb(PutHeader(manifest, replica=True, repair=True)))
    assert pushed.repair is True
    await service.close()


async def test_concurrent_flows_share_a_throttle_fairly() -> None:
    """Two streams under one cap, one of them asking for twice as much at a time: while
    both wait, each moves about half of what passes."""
    throttle = Throttle(4_000_000)
    moved = {"small": 0, "large": 0}

    async def stream(name: str, size: int) -> AsyncIterator[tuple[int, bytes]]:
        for index in range(10_000):
            yield index, bytes(size)

    async def drain(name: str, size: int, until: float) -> None:
        async for _, chunk in throttle.paced(stream(name, size)):
            moved[name] += len(chunk)
            if time.monotonic() > until:
                return

    until = time.monotonic() + 1.0
    await asyncio.gather(drain("small", 50_000, until), drain("large", 100_000, until))
    total = moved["small"] + moved["large"]
    assert abs(moved["small"] - moved["large"]) <= 250_000, moved
    assert total <= 4_000_000 * 1.2 + 300_000, moved  # never faster than the cap


async def test_a_puts_copies_count_as_users_and_a_repair_push_as_repair(
    net: PeerNetwork, tmp_path: Path
) -> None:
    """The owner's copy of a put to its successor is part of the user's put (upload there,
    download here); the push that brings back a copy the successor lost is repair, on both
    sides."""
    peers = await net.ring(2)
    source = tmp_path / "kept.bin"
    source.write_bytes(data(5, 300_000))
    client = FileClient(NodeRing(peers[0].server.node), GrpcFilePeers())
    try:
        await client.put(source)
    finally:
        await client.peers.close()
    await wait_until(
        lambda: all(p.store.manifest("kept.bin") is not None for p in peers),
        10,
        "both copies",
    )
    owner = next(p for p in peers if p.rates.upload.moved)
    other = next(p for p in peers if p is not owner)
    assert owner.rates.upload.moved == other.rates.download.moved == 300_000
    assert owner.rates.repair.moved == other.rates.repair.moved == 0
    other.store.remove("kept.bin")  # lost: the next repair round pushes it back
    await wait_until(lambda: other.store.manifest("kept.bin") is not None, 10, "repair")
    assert owner.rates.repair.moved == other.rates.repair.moved == 300_000
    assert owner.rates.upload.moved == other.rates.download.moved == 300_000


async def test_a_transfer_that_stops_waiting_holds_no_one_back() -> None:
    throttle = Throttle(1_000_000)
    stuck = asyncio.create_task(throttle.take("stuck", 10_000_000))  # ten seconds' worth
    await asyncio.sleep(0.05)
    stuck.cancel()
    async with asyncio.timeout(2):  # far less than the ten seconds the other asked for
        await throttle.take("next", 40_000)
    assert stuck.cancelled() and throttle.bucket.waiting == 0
