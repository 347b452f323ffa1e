"""Rate limits where file bytes move: a `FairBucket` (`files.rates`) on the event loop.

A `Throttle` is one cap; `take(flow, n)` returns once n bytes of that flow may move. A chunk
stream is one flow (`paced`), so concurrent transfers share a cap fairly. A node has three
(`NodeRates`): what it sends for users' transfers, what it receives for them, and repair
and scrubbing, both ways together, apart from the users' two. `PacedPeers` paces the
calls one node (or a client) makes to the others; the node paces what it serves and
receives itself (`service`). With rate 0 a throttle only counts the bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Sequence, Sized
from dataclasses import dataclass, field
from typing import TypeVar

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
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
)
from chordshare.files.publisher import Claim
from chordshare.files.rates import Ask, FairBucket
from chordshare.files.unfinished import UnfinishedPut
from chordshare.transport.files import ChunkFetcher, FileAnswerer, FilePeers

B = TypeVar("B", bound=Sized)  # a chunk's data: bytes, or a view of a received message


class Throttle:
    """One cap in bytes per second (0: none), shared fairly by the flows that take from it."""

    def __init__(self, rate: float = 0, burst: float | None = None) -> None:
        self.bucket = FairBucket(rate, burst, time.monotonic())
        self.moved = 0  # bytes taken, limited or not
        self.waited = 0.0  # seconds flows spent waiting, summed
        self._waiting: dict[Ask, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def rate(self) -> float:
        return self.bucket.rate

    @property
    def limited(self) -> bool:
        return not self.bucket.unlimited

    async def take(self, flow: Hashable, nbytes: int) -> None:
        """Return once `nbytes` of `flow` may move."""
        self.moved += nbytes
        if self.bucket.unlimited:
            return
        asked = time.monotonic()
        ask = self.bucket.ask(flow, nbytes, asked)
        self._dispatch()
        if ask.granted:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting[ask] = future
        try:
            await future
        except asyncio.CancelledError:
            self.bucket.withdraw(ask, time.monotonic())
            self._dispatch()
            raise
        finally:
            self._waiting.pop(ask, None)
            self.waited += time.monotonic() - asked

    def forget(self, flow: Hashable) -> None:
        """`flow` has ended."""
        self.bucket.forget(flow)

    async def paced(self, chunks: AsyncIterable[tuple[int, B]]) -> AsyncIterator[tuple[int, B]]:
        """`chunks`, each let through once the cap allows its bytes: one flow. Closing it
        closes `chunks` too (a chunk stream's call ends with it)."""
        flow = object()
        stream = aiter(chunks)
        try:
            async for index, data in stream:
                await self.take(flow, len(data))
                yield index, data
        finally:
            self.forget(flow)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _dispatch(self) -> None:
        """Wake the asks that may go now, and set a timer for the next one."""
        now = time.monotonic()
        for ask in self.bucket.grants(now):
            future = self._waiting.get(ask)
            if future is not None and not future.done():
                future.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.bucket.next_grant_at(now)
        if due is not None:
            self._timer = asyncio.get_running_loop().call_later(due - now, self._dispatch)


@dataclass
class NodeRates:
    """A node's caps. upload: file bytes it sends for users' transfers; download: those
    it receives for them; repair: repair pushes and scrub heals it sends and receives, and
    the chunks its scrubber reads, apart from the users' caps."""

    upload: Throttle = field(default_factory=Throttle)
    download: Throttle = field(default_factory=Throttle)
    repair: Throttle = field(default_factory=Throttle)

    @classmethod
    def of(cls, upload: float = 0, download: float = 0, repair: float = 0) -> NodeRates:
        return cls(Throttle(upload), Throttle(download), Throttle(repair))

    def by_kind(self) -> dict[str, Throttle]:
        return {"upload": self.upload, "download": self.download, "repair": self.repair}


def paced_fetcher(fetch: ChunkFetcher, throttle: Throttle) -> ChunkFetcher:
    """`fetch`, each stream it returns paced by `throttle` as it is read."""

    def fetch_paced(
        address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        return throttle.paced(fetch(address, sha256, indexes))

    return fetch_paced


class PacedPeers:
    """`peers` with the chunks this side sends paced by `send` and those it receives by
    `receive` (one throttle for both: a client's own transfer)."""

    def __init__(self, peers: FilePeers, send: Throttle, receive: Throttle | None = None) -> None:
        self.peers = peers
        self.send = send
        self.receive = receive if receive is not None else send

    def at(self, address: str) -> FileAnswerer:
        return PacedPeer(self, self.peers.at(address))

    async def close(self) -> None:
        await self.peers.close()


class PacedPeer:
    """One peer's answerer, its chunk streams paced; every other call as it is."""

    def __init__(self, peers: PacedPeers, peer: FileAnswerer) -> None:
        self.peers = peers
        self.peer = peer

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        return await self.peer.put_file(header, self.peers.send.paced(chunks), trailer)

    def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        chunks = self.peer.fetch_chunks(sha256, indexes, repair, manifest_id)
        return self.peers.receive.paced(chunks)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        return await self.peer.missing_chunks(digests)

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        return await self.peer.find_file(name, inline_up_to, owner_only, manifest_id)

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        return await self.peer.offer(versions)

    async def delete(
        self,
        name: str,
        version: float = 0.0,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> bool:
        return await self.peer.delete(name, version, replica, claim)

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        return await self.peer.find_for_put(name, owner_only)

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        await self.peer.publish_index(records, ttl, remove)

    async def query_index(self, key: str) -> list[IndexEntry]:
        return await self.peer.query_index(key)

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        await self.peer.publish_locators(locators, ttl)

    async def list_files(self) -> FileListing:
        return await self.peer.list_files()

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        return await self.peer.keep_file(name, manifest_id)
