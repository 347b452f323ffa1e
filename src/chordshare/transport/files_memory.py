"""`FilePeers` in memory: calls go straight to other nodes' file services, no sockets.

For fast tests of many nodes in one event loop, on the same `MemoryNetwork` as the Chord
runtime: a killed address (not in `network.nodes`) refuses at once, a frozen one hangs until
the timeout, like the gRPC version facing a dead or a cut-off host. Refusals are the
service's own `FileError`s, as the gRPC version raises them again on the caller's side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    FileError,
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    KeepOutcome,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
    Refusal,
)
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut
from chordshare.transport.base import PeerError
from chordshare.transport.files import FileAnswerer
from chordshare.transport.health import PeerHealth
from chordshare.transport.memory import MemoryNetwork


class MemoryFilePeers:
    def __init__(
        self,
        network: MemoryNetwork,
        services: dict[str, FileAnswerer],
        timeout: float = 1.0,
        health: PeerHealth | None = None,
        origin: str | None = None,
    ) -> None:
        self.network = network
        self.services = services  # by address; shared with the test, which adds nodes to it
        self.timeout = timeout
        self.health = health or PeerHealth()
        self.origin = origin  # where the calls come from, for the network's partitions

    async def target(self, address: str) -> FileAnswerer:
        """The service at address, or the PeerError a real network would give."""
        if address in self.network.frozen:
            await asyncio.sleep(self.timeout)
            self.health.record_failure(address)
            raise PeerError(address, "did not answer in time")
        if address not in self.network.nodes:
            self.health.record_failure(address)
            raise PeerError(address, "connection refused")
        if self.network.cut(self.origin, address):
            self.health.record_failure(address)
            raise PeerError(address, "unreachable: the network is partitioned")
        service = self.services.get(address)
        if service is None:
            self.health.record_failure(address)
            raise PeerError(address, "is not a chordshare node (it does not serve files)")
        # In memory a round trip costs nothing; recorded so suspicion clears as over gRPC.
        self.health.record_success(address, 0.0)
        return service

    def at(self, address: str) -> MemoryFilePeer:
        return MemoryFilePeer(self, address)

    async def close(self) -> None:
        return None


class MemoryFilePeer:
    """One node's answerer behind the in-memory network: a node that is gone or frozen
    fails as over gRPC."""

    def __init__(self, peers: MemoryFilePeers, address: str) -> None:
        self.peers = peers
        self.address = address

    async def _target(self) -> FileAnswerer:
        return await self.peers.target(self.address)

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        try:
            return await (await self._target()).put_file(header, chunks, trailer)
        except FileError as err:
            if err.refusal is Refusal.UNAVAILABLE:  # as over gRPC: retry elsewhere
                raise PeerError(self.address, err.message) from None
            raise

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        return await (await self._target()).missing_chunks(digests)

    async def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        service = await self._target()
        stream = service.fetch_chunks(sha256, indexes, repair, manifest_id)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for chunk in stream:
                yield chunk

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        target = await self._target()
        return await target.find_file(name, inline_up_to, owner_only, manifest_id)

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        return await (await self._target()).find_for_put(name, owner_only)

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        return await (await self._target()).offer(versions)

    async def delete(
        self,
        name: str,
        version: float = 0.0,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> bool:
        return await (await self._target()).delete(name, version, replica, claim)

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        await (await self._target()).publish_index(records, ttl, remove)

    async def query_index(self, key: str) -> list[IndexEntry]:
        return await (await self._target()).query_index(key)

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        await (await self._target()).publish_locators(locators, ttl)

    async def list_files(self) -> FileListing:
        return await (await self._target()).list_files()

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        return await (await self._target()).keep_file(name, manifest_id)
