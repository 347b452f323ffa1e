"""An owner that has as many puts from a peer as it takes says "busy, try again in a
second" (UNAVAILABLE with the wait in the trailing metadata), the caller does not take it
for a dead peer, and a client's put waits its turn instead of failing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from waiting import wait_until

from chordshare.chord.messages import NodeRef
from chordshare.files.messages import SMALL_PUT, FileError, PutHeader, Refusal
from chordshare.ids import IdSpace
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.putting import Putter
from chordshare.sharing.routes import RouteCache
from chordshare.sharing.service import FileService
from chordshare.storage.store import NodeStore
from chordshare.transport.files_grpc import GrpcFilePeers
from chordshare.transport.files_servicer import FilesServicer, add_files_servicer
from chordshare.transport.limits import BUSY_RETRY_AFTER, SERVER_OPTIONS, StreamLimits

CHUNK = 32 * 1024
SPACE = IdSpace(16)


@dataclass
class Owner:
    address: str
    servicer: FilesServicer
    store: NodeStore


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[Owner]:
    store = NodeStore(tmp_path / "owner")
    servicer = FilesServicer(FileService("127.0.0.1:1", store), StreamLimits(puts_per_peer=1))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_files_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Owner(f"127.0.0.1:{port}", servicer, store)
    await server.stop(None)
    store.close()


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers(timeout=5.0)
    yield grpc_peers
    await grpc_peers.close()


async def held_put(peers: GrpcFilePeers, owner: Owner, go_on: asyncio.Event) -> None:
    """A put over SMALL_PUT (a stream) that holds its slot until `go_on` is set."""
    data = os.urandom(SMALL_PUT + CHUNK)
    manifest = manifest_of(data, "held.bin", CHUNK)

    async def chunks() -> AsyncIterator[tuple[int, bytes]]:
        yield 0, data[:CHUNK]
        await go_on.wait()
        for index in range(1, len(manifest.chunks)):
            yield index, data[index * CHUNK : (index + 1) * CHUNK]

    await peers.at(owner.address).put_file(PutHeader(manifest), chunks())


async def test_a_busy_owner_says_when_to_try_again_and_is_not_suspected(
    owner: Owner, peers: GrpcFilePeers
) -> None:
    go_on = asyncio.Event()
    holding = asyncio.create_task(held_put(peers, owner, go_on))
    await wait_until(lambda: owner.servicer.puts.held_in_all() == 1, 5, "the first put")
    data = b"a second file" * 100
    manifest = manifest_of(data, "second.txt", CHUNK)

    async def chunks() -> AsyncIterator[tuple[int, bytes]]:
        yield 0, data

    with pytest.raises(FileError) as refused:
        await peers.at(owner.address).put_file(PutHeader(manifest), chunks())
    assert refused.value.refusal is Refusal.UNAVAILABLE
    assert refused.value.retry_after == BUSY_RETRY_AFTER
    assert owner.address not in peers.health.suspected()
    go_on.set()
    await asyncio.wait_for(holding, 5)
    stored = await peers.at(owner.address).put_file(PutHeader(manifest), chunks())
    assert stored.manifest.name == "second.txt"


async def test_a_put_waits_its_turn_at_a_busy_owner(
    owner: Owner, peers: GrpcFilePeers, tmp_path: Path
) -> None:
    go_on = asyncio.Event()
    holding = asyncio.create_task(held_put(peers, owner, go_on))
    await wait_until(lambda: owner.servicer.puts.held_in_all() == 1, 5, "the first put")
    source = tmp_path / "waits.txt"
    source.write_bytes(b"waiting for a turn" * 1000)
    me = NodeRef(1, owner.address)
    lookups: list[int] = []

    async def lookup(key: int) -> NodeRef:
        lookups.append(key)
        return me

    putter = Putter(SPACE, peers, RouteCache(), lookup)
    putting = asyncio.create_task(putter.put(source))
    await wait_until(lambda: owner.servicer.puts.refused >= 1, 5, "the put to be refused")
    assert not putting.done()
    go_on.set()
    await asyncio.wait_for(holding, 5)
    outcome = await asyncio.wait_for(putting, 10)
    assert outcome.manifest.name == "waits.txt"
    assert owner.store.manifest("waits.txt") is not None
    assert len(lookups) == 1  # a busy owner is still the owner: not looked up again
