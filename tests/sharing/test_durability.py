"""An acknowledged put survives: the crash of its owner right after the answer, a graceful
leave that races it, and a leave followed by crashes of the other holders.

These are the three ways the churn soak (bench/churn_soak.py) lost acknowledged files: the
owner answered before any other node had a copy, a leaving owner accepted puts after its
handoff had listed its files, and a handoff gave the files to one successor only.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, PutHeader, Refusal
from chordshare.files.placement import file_key
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.storage.store import NodeStore
from chordshare.transport.files_grpc import GrpcFilePeers

# Repair far away: whatever copies exist below were made by the put or the leave itself.
NO_REPAIR = {"repair_period": 3600.0}


@pytest.fixture
async def files() -> AsyncIterator[GrpcFilePeers]:
    peers = GrpcFilePeers(timeout=5.0)
    yield peers
    await peers.close()


async def ring_without_repair(net: PeerNetwork, size: int) -> list[SharingPeer]:
    first = await net.start(**NO_REPAIR)
    for _ in range(size - 1):
        await net.start(join=first.server.node.me.address, **NO_REPAIR)
    await wait_until(net.converged, 30, f"{size} peers to converge")
    return net.live()


def holders(net: PeerNetwork, name: str) -> list[SharingPeer]:
    return [p for p in net.live() if p.store.manifest(name) is not None]


def owner_of(peers: list[SharingPeer], name: str) -> SharingPeer:
    node = peers[0].server.node
    key = file_key(node.space, name)
    ids = sorted(p.server.node.me.id for p in peers)
    owner_id = next((i for i in ids if i >= key), ids[0])
    return next(p for p in peers if p.server.node.me.id == owner_id)


async def no_chunks() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield  # an async generator that yields nothing


async def only_chunk(data: bytes, index: int) -> AsyncIterator[tuple[int, bytes]]:
    yield index, data[index * 128 * 1024 : (index + 1) * 128 * 1024]


def a_file(tmp_path: Path, name: str, size: int = 20_000) -> Path:
    path = tmp_path / name
    path.write_bytes(secrets.token_bytes(size))
    return path


async def test_a_put_is_acknowledged_only_once_another_node_has_a_copy(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    await ring_without_repair(net, 4)
    for i in range(6):
        source = a_file(tmp_path, f"acked-{i}.bin")
        await FileClient(NodeRing(net.live()[0].server.node), files).put(source)
        # Checked at once, before the owner's background copies had a chance to run.
        assert len(holders(net, source.name)) >= 2, source.name
        owner = owner_of(net.live(), source.name)
        await owner.stop(graceful=False)  # kill -9 right after the answer
        survivor = next(p for p in net.live())
        out = tmp_path / f"back-{i}"
        await FileClient(NodeRing(survivor.server.node), files).get(source.name, out)
        assert out.read_bytes() == source.read_bytes()
        # Back to four peers for the next round.
        await net.start(join=survivor.server.node.me.address, **NO_REPAIR)
        await wait_until(net.converged, 30, "the ring to converge again")


async def test_a_leaving_owner_refuses_puts_and_the_client_puts_again_elsewhere(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    peers = await ring_without_repair(net, 4)
    source = a_file(tmp_path, "during-leave.bin")
    owner = owner_of(peers, source.name)
    address = owner.server.node.me.address
    client_side = next(p for p in peers if p is not owner)
    assert owner.service is not None
    owner.service.leaving = True  # what a SIGTERM does first, before the handoff
    put = asyncio.create_task(FileClient(NodeRing(client_side.server.node), files).put(source))
    # The owner refuses: the client counts it as unavailable and will try again.
    await wait_until(lambda: address in files.health, 10, "the client to meet the refusal")
    assert owner.store.manifest(source.name) is None
    await owner.stop(graceful=True)
    outcome = await asyncio.wait_for(put, 30)
    assert outcome.manifest.name == source.name
    assert len(holders(net, source.name)) >= 2


async def test_a_graceful_leave_gives_every_file_to_the_next_k_nodes(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    peers = await ring_without_repair(net, 6)
    client = FileClient(NodeRing(peers[0].server.node), files)
    names = []
    for i in range(10):
        source = a_file(tmp_path, f"kept-{i}.bin", 3000)
        await client.put(source)
        names.append(source.name)
    # The puts' background copies: each file on its three holders.
    await wait_until(
        lambda: all(len(holders(net, n)) >= 3 for n in names), 30, "three copies of each"
    )
    leaver = owner_of(peers, names[0])
    held_by_leaver = [n for n in names if leaver.store.manifest(n) is not None]
    await leaver.stop(graceful=True)
    # No repair ran (it is an hour away): the leave alone kept three copies of each file,
    # also where the first successor already had one.
    for name in held_by_leaver:
        assert len(holders(net, name)) >= 3, name


async def test_a_chunk_damaged_on_the_owners_disk_is_dropped_and_restored_by_the_next_put(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    [peer] = await ring_without_repair(net, 1)
    client = FileClient(NodeRing(peer.server.node), files, replicas=1)
    source = a_file(tmp_path, "first.bin", size=4 * 128 * 1024)
    stored = (await client.put(source, chunk_size=128 * 1024)).manifest
    damaged = stored.chunks[2]
    path = peer.store.chunks.path_for(damaged)
    path.write_bytes(b"bit rot" + path.read_bytes()[7:])

    # The same bytes under another name, manifest first (as a put of a name the owner
    # holds, or any client that hashed the file already, sends it): the owner has every
    # chunk, so none is sent, and the owner finds the damage when it checks the whole file.
    with pytest.raises(FileError) as refused:
        header = PutHeader(replace(stored, name="second.bin"))
        await files.at(peer.server.node.me.address).put_file(header, no_chunks())
    assert refused.value.refusal is Refusal.DATA_LOSS
    assert "chunk 2 of 'second.bin' was damaged" in refused.value.message
    assert not peer.store.has_chunk(damaged)
    assert peer.store.manifest("second.bin") is None

    # Put again: the chunk is missing now, so it is sent, and both files are whole.
    await files.at(peer.server.node.me.address).put_file(header, only_chunk(source.read_bytes(), 2))
    for name in ("first.bin", "second.bin"):
        out = tmp_path / f"got-{name}"
        await client.get(name, out)
        assert out.read_bytes() == source.read_bytes()


async def test_a_put_that_sends_its_manifest_last_heals_a_damaged_copy(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    """Such a put sends every chunk, hashed as it arrives, and rewrites the copies the
    owner had: a damaged one is whole again, for every file that uses it."""
    [peer] = await ring_without_repair(net, 1)
    client = FileClient(NodeRing(peer.server.node), files, replicas=1)
    chunk = 128 * 1024
    source = a_file(tmp_path, "first.bin", size=4 * chunk)
    stored = (await client.put(source, chunk_size=chunk)).manifest
    path = peer.store.chunks.path_for(stored.chunks[1])
    path.write_bytes(b"bit rot" + path.read_bytes()[7:])

    # Another file sharing every chunk but the first: a new name whose first chunk the
    # owner lacks, so it is streamed, the damaged chunk among the rest.
    second = tmp_path / "second.bin"
    second.write_bytes(secrets.token_bytes(chunk) + source.read_bytes()[chunk:])
    await client.put(second, chunk_size=chunk)
    for original in (source, second):
        out = tmp_path / f"got-{original.name}"
        await client.get(original.name, out)
        assert out.read_bytes() == original.read_bytes()
    assert peer.store.read_chunk(stored.chunks[1]) == source.read_bytes()[chunk : 2 * chunk]


@pytest.mark.parametrize("first", ["client cancels", "node stops"])
async def test_a_node_stopped_during_a_put_lets_the_put_clean_up_first(
    net: PeerNetwork,
    files: GrpcFilePeers,
    caplog: pytest.LogCaptureFixture,
    first: str,
) -> None:
    """A put cut off (by its client, or by the node stopping) ends in threads, keeping
    what it stored as the name's unfinished put; the node's store must stay open until it
    has, and the next start finds exactly that: no file, and the chunks the record names."""
    [peer] = await ring_without_repair(net, 1)
    chunk = 128 * 1024
    data = secrets.token_bytes(8 * chunk)
    promise = Manifest("cut.bin", len(data), b"", chunk, (), 1.0)
    sent = asyncio.Event()

    async def three_then_wait() -> AsyncIterator[tuple[int, bytes]]:
        for index in range(3):
            yield index, data[index * chunk : (index + 1) * chunk]
        sent.set()
        await asyncio.Event().wait()  # the rest never comes

    header = PutHeader(promise, manifest_last=True)
    put = asyncio.create_task(
        files.at(peer.server.node.me.address).put_file(header, three_then_wait(), lambda: promise)
    )
    await asyncio.wait_for(sent.wait(), 10)
    await wait_until(lambda: peer.store.used_bytes() > 0, 10, "chunks stored")
    if first == "client cancels":
        put.cancel()
    await peer.stop(graceful=False)
    await asyncio.gather(put, return_exceptions=True)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    again = NodeStore(peer.settings.data_dir)
    try:
        assert again.manifests() == []
        kept = again.unfinished("cut.bin")
        assert kept is not None and [index for index, _ in kept.held] == [0, 1, 2]
        assert sorted(again.chunks.digests()) == sorted(digest for _, digest in kept.held)
        assert again.used_bytes() == kept.held_bytes == 3 * chunk
    finally:
        again.close()
