"""A node that stops leaves none of its tasks running: maintenance, the sharing loop, the
scrubber and the copies a put left under way all end with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers(timeout=5.0)
    yield grpc_peers
    await grpc_peers.close()


@pytest.mark.parametrize("graceful", [True, False])
async def test_a_stopped_ring_leaves_no_task_running(
    tmp_path: Path, peers: GrpcFilePeers, graceful: bool
) -> None:
    before = asyncio.all_tasks()
    net = PeerNetwork(tmp_path)
    scrubbing = {"scrub_rate": 1 << 20, "scrub_first_after": 0.0}
    first = await net.start(**scrubbing)
    for _ in range(2):
        await net.start(join=first.server.node.me.address, **scrubbing)
    await wait_until(net.converged, 20, "3 peers to converge")
    client = FileClient(NodeRing(first.server.node), peers)
    for i in range(4):
        source = tmp_path / f"file{i}.bin"
        source.write_bytes(bytes([i]) * 300_000)
        await client.put(source)
    assert len(asyncio.all_tasks() - before) > 10  # maintenance, sharing loops, scrubbers
    for peer in net.live():
        await peer.stop(graceful=graceful)
    left = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not left, sorted(task.get_name() for task in left)
