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

from chordshare.sharing.peers import (
    FileError,
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
    Refusal,
)
from chordshare.sharing.servicer import FileAnswerer
from chordshare.storage.catalog import Manifest
from chordshare.transport.base import PeerError
from chordshare.transport.health import PeerHealth
from chordshare.transport.memory import MemoryNetwork


class MemoryFilePeers:
    def __init__(
        self,
        network: MemoryNetwork,
        services: dict[str, FileAnswerer],
        timeout: float = 1.0,
        health: PeerHealth | None = None,
    ) -> None:
        self.network = network
        self.services = services  # by address; shared with the test, which adds nodes to it
        self.timeout = timeout
        self.health = health or PeerHealth()

    async def _target(self, address: str) -> FileAnswerer:
        """The service at address, or the PeerError a real network would give."""
        if address in self.network.frozen:
            await asyncio.sleep(self.timeout)
            self.health.record_failure(address)
            raise PeerError(address, "did not answer in time")
        if address not in self.network.nodes:
            self.health.record_failure(address)
            raise PeerError(address, "connection refused")
        service = self.services.get(address)
        if service is None:
            self.health.record_failure(address)
            raise PeerError(address, "is not a chordshare node (it does not serve files)")
        # In memory a round trip costs nothing; recorded so suspicion clears as over gRPC.
        self.health.record_success(address, 0.0)
        return service

    async def put_file(
        self,
        address: str,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        try:
            return await (await self._target(address)).put_file(header, chunks, trailer)
        except FileError as err:
            if err.refusal is Refusal.UNAVAILABLE:  # as over gRPC: retry elsewhere
                raise PeerError(address, err.message) from None
            raise

    async def missing_chunks(self, address: str, digests: Sequence[bytes]) -> list[int]:
        return await (await self._target(address)).missing_chunks(digests)

    async def fetch_chunks(
        self, address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        service = await self._target(address)
        stream = service.fetch_chunks(sha256, indexes)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for chunk in stream:
                yield chunk

    async def find_file(
        self, address: str, name: str, inline_up_to: int = 0, owner_only: bool = False
    ) -> FoundFile | None:
        return await (await self._target(address)).find_file(name, inline_up_to, owner_only)

    async def offer(self, address: str, versions: Sequence[FileVersion]) -> OfferAnswer:
        return await (await self._target(address)).offer(versions)

    async def delete(
        self, address: str, name: str, version: float = 0.0, replica: bool = False
    ) -> bool:
        return await (await self._target(address)).delete(name, version, replica)

    async def publish_index(
        self, address: str, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        await (await self._target(address)).publish_index(records, ttl, remove)

    async def query_index(self, address: str, key: str) -> list[IndexEntry]:
        return await (await self._target(address)).query_index(key)

    async def publish_locators(self, address: str, locators: Sequence[Locator], ttl: float) -> None:
        await (await self._target(address)).publish_locators(locators, ttl)

    async def list_files(self, address: str) -> FileListing:
        return await (await self._target(address)).list_files()

    async def close(self) -> None:
        return None
