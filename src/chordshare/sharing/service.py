"""What a node answers about files: the parts that store, serve, keep versions and keep
soft state, put together behind the one interface its peers and clients call.

Transport-free: the gRPC servicer and the in-memory peers call these methods. Refusals are
`FileError`s. Disk work and hashing run in threads, so a large transfer never blocks the
event loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Protocol

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
from chordshare.files.unfinished import DEFAULT_TTL, UnfinishedPut, expired
from chordshare.sharing.chunk_server import ChunkServer
from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.keeping import Keeper
from chordshare.sharing.put_pipeline import Holders, PutPipeline
from chordshare.sharing.shared_dir import SharedDirectory
from chordshare.sharing.soft_state import SoftState
from chordshare.sharing.throttle import NodeRates
from chordshare.sharing.traffic import Traffic
from chordshare.sharing.version_book import Listener, VersionBook
from chordshare.storage.store import NodeStore


class Announcer(Protocol):
    async def announce(self, version: FileVersion) -> int | None:
        """Tell the other holders of a name about a removal, at once; how many answered
        (None: there is no other node)."""
        ...


class FileService:
    """The files of one node. `address` is the node's advertised address (it names itself
    as a holder). Without `owns` every name is this node's, and without `holders` there is
    no other node to copy to or ask (a bare node in tests)."""

    def __init__(
        self,
        address: str,
        store: NodeStore,
        shared: SharedDirectory | None = None,
        *,
        book: VersionBook | None = None,
        soft: SoftState | None = None,
        owns: Callable[[str], bool | None] | None = None,
        holders: Holders | None = None,
        announcer: Announcer | None = None,
        cache: DownloadCache | None = None,
        clock: Callable[[], float] = time.time,
        unfinished_ttl: float = DEFAULT_TTL,
        rates: NodeRates | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.address = address
        self.store = store
        self.shared = shared
        self.book = book if book is not None else VersionBook(address, store, clock)
        self.soft = soft if soft is not None else SoftState()
        self.traffic = Traffic()
        self.puts = PutPipeline(
            store, self.book, self.traffic, owns, holders, clock, unfinished_ttl
        )
        self.server = ChunkServer(store, self.book, self.soft, self.traffic, shared, owns, cache)
        self.announcer = announcer
        self.rates = rates if rates is not None else NodeRates()
        self.keeper = keeper  # None: the node keeps nothing for its clients

    @property
    def leaving(self) -> bool:
        return self.puts.leaving

    @leaving.setter
    def leaving(self, value: bool) -> None:
        """Set before a graceful leave hands the files over: clients' puts are refused."""
        self.puts.leaving = value

    @property
    def bytes_served(self) -> int:
        return self.traffic.served

    @property
    def bytes_received(self) -> int:
        return self.traffic.received

    def on_change(self, listener: Listener) -> None:
        """Call listener(name) after a file is stored, replaced or removed here."""
        self.book.on_change(listener)

    async def close(self) -> None:
        await self.puts.close()
        await self.traffic.close()

    # What peers and clients call.

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        """Received under the node's download cap: a client's put, or a put's own copy
        from its owner; a repair push under the repair cap."""
        throttle = self.rates.repair if header.replica and header.repair else self.rates.download
        return await self.puts.put(header, throttle.paced(chunks), trailer)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        return await self.server.missing_chunks(digests)

    def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Served under the node's upload cap, or its repair cap for a scrubber's heal."""
        throttle = self.rates.repair if repair else self.rates.upload
        return self.server.fetch_chunks(sha256, indexes, throttle, manifest_id)

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        return await self.server.find_file(name, inline_up_to, owner_only, manifest_id)

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        """What a putter asks first: the name as `find_file` answers, and what this node
        keeps of a put of it that ended unfinished (while its time lasts)."""
        found = await self.server.find_file(name, 0, owner_only)
        record = self.store.unfinished(name)
        if record is not None and expired(record, self.puts.clock(), self.puts.unfinished_ttl):
            record = None
        return found, record

    async def list_files(self) -> FileListing:
        return await self.server.list_files()

    def versions(self) -> list[FileVersion]:
        return self.book.versions()

    def version_of(self, name: str) -> FileVersion | None:
        return self.book.version_of(name)

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        return await self.book.offer(versions)

    async def delete(
        self,
        name: str,
        version: float = 0.0,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> bool:
        removal = await self.book.remove(name, version, replica=replica, claim=claim)
        if removal is None:
            return False  # a newer put outlived this removal
        if not replica and self.announcer is not None:
            # The other holders learn of a removal before it is confirmed, so that a get
            # right after it cannot be served an old copy by one of them, and a removal is
            # confirmed only once one of them has it: were this node to crash, the copies
            # they hold would otherwise bring the name back.
            told = await self.announcer.announce(removal.tombstone)
            if told == 0:
                raise FileError(
                    Refusal.UNAVAILABLE,
                    f"{name!r} is removed on {self.address} but no other holder has confirmed "
                    "the removal yet; remove it again",
                )
        return removal.existed

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        await self.soft.publish_index(records, ttl, remove)

    async def query_index(self, key: str) -> list[IndexEntry]:
        return await self.soft.query_index(key)

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        await self.soft.publish_locators(locators, ttl)

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        if self.keeper is None:
            return KeepOutcome.OFF
        return await self.keeper.keep(name, manifest_id)

    async def stores(self, name: str, manifest_id: bytes) -> bool:
        """Whether this node serves that version of name itself: stored (live or kept
        after a replace), or shared from its folder."""
        if await self.server.find_file(name, manifest_id=manifest_id) is not None:
            return True
        shared = self.shared.named(name) if self.shared is not None else None
        return shared is not None and shared.manifest.id == manifest_id
