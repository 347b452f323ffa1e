"""Whole peers (ring and files) on loopback gRPC in one process, for the tests that need a
small real network: start them, join them into a ring, wait until it has converged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from waiting import wait_until

from chordshare.chord.invariants import convergence_problems
from chordshare.files.manifest import Manifest
from chordshare.node.runtime import Timing
from chordshare.node.server import NodeSettings
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.peer import SharingPeer, SharingSettings
from chordshare.transport.security import PeerSecurity

FAST = Timing(stabilize=0.1, check_predecessor=0.2, fix_fingers=0.3, join_deadline=2.0)


class PeerNetwork:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.peers: list[SharingPeer] = []

    async def start(
        self,
        join: str | None = None,
        name: str | None = None,
        security: PeerSecurity | None = None,
        **sharing: Any,
    ) -> SharingPeer:
        """One more peer (joining `join`, or a ring of its own), repairing every 0.5 s."""
        data = self.root / (name or f"node{len(self.peers)}")
        peer = SharingPeer(
            NodeSettings(
                bind="127.0.0.1:0", join=join, timing=FAST, security=security or PeerSecurity()
            ),
            SharingSettings(
                **{
                    "repair_period": 0.5,
                    "republish": 1.0,
                    "scrub_rate": 0,  # tests that scrub ask for it
                    **sharing,
                    "data_dir": data,
                }
            ),
        )
        await peer.start()
        self.peers.append(peer)
        return peer

    async def ring(
        self, size: int, security: PeerSecurity | None = None, **sharing: Any
    ) -> list[SharingPeer]:
        """`size` new peers with the same settings, all joined through the first, once their
        ring has converged."""
        first = await self.start(security=security, **sharing)
        started = [first]
        for _ in range(size - 1):
            join = first.server.node.me.address
            started.append(await self.start(join=join, security=security, **sharing))
        await wait_until(self.converged, 20, f"{size} peers to converge")
        return started

    def live(self) -> list[SharingPeer]:
        return [p for p in self.peers if p.server.server is not None]

    def converged(self) -> bool:
        states = {p.server.node.me.address: p.server.node.state for p in self.live()}
        return not convergence_problems(states, set(states))

    async def close(self) -> None:
        await asyncio.gather(*(p.stop(graceful=False) for p in self.live()), return_exceptions=True)


def store_directly(peer: SharingPeer, name: str, data: bytes, chunk_size: int = 1024) -> Manifest:
    """Put a file straight into peer's store, with no check of its name: what a node that
    stored it under an older name rule holds."""
    manifest = manifest_of(data, name, chunk_size)
    for index, digest in enumerate(manifest.chunks):
        peer.store.put_chunk(data[index * chunk_size : (index + 1) * chunk_size], digest)
    peer.store.commit(manifest)
    return manifest
