"""How a node takes a put: one pipeline for every kind of put.

A put comes with its manifest first (the node checks each chunk against it as it arrives),
with its manifest last (the client reads its file once, hashing as it sends: the node
hashes each chunk as it stores it, and the closing manifest must list exactly those
hashes), or whole in one message (a small file). The node also computes the whole file's
SHA-256 as the chunks arrive, and fills it in when the client left it out: a client hashes
each byte once, and the `sha256:` record a file is found by never names bytes the node did
not hash to it. Which version the put stores is `files.versions.judge_put`.

Chunks are stored in threads (hashing releases the GIL, so two cores work at once) while
the next ones arrive; a small put is kept in memory and copied to a successor, from memory,
while this node commits it. A client's put is acknowledged only once another node holds a
copy, so that the crash of this node cannot lose it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from chordshare.files.lineage import Ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    SMALL_PUT,
    FileError,
    FileVersion,
    PutHeader,
    PutOutcome,
    Refusal,
)
from chordshare.files.ownership import refuse_unless_owner
from chordshare.files.put_checks import check_chunk, check_trailer, refuse_bad_header
from chordshare.files.unfinished import DEFAULT_TTL
from chordshare.files.versions import ancestry_after, judge_put, keep_aside, put_parent
from chordshare.sharing.put_store import PutStore
from chordshare.sharing.put_work import PutUnderWay
from chordshare.sharing.traffic import Traffic
from chordshare.sharing.version_book import VersionBook
from chordshare.storage.store import NodeStore

log = logging.getLogger(__name__)
T = TypeVar("T")

FLUSH_BEHIND = 16  # chunks between flushes of a put's earlier chunks
CLOSE_WAIT = 10.0  # seconds a closing node waits for puts still cleaning up


class Holders(Protocol):
    """The other holders of the names this node owns, as a put needs them."""

    async def version_elsewhere(self, name: str) -> FileVersion | None:
        """The newest version of name the other holders know of, or None; asked before a
        first put of a name here (this node may just have become its owner)."""
        ...

    async def replicate(
        self,
        name: str,
        manifest: Manifest | None,
        at_hand: Mapping[int, bytes] | None,
        ancestry: Ancestry | None = None,
    ) -> int | None:
        """Copy a just-put name to the successors; 1 once one holds it, 0 if none could,
        None when there is no other node. `at_hand`: its chunks, when in memory."""
        ...


class PutPipeline:
    def __init__(
        self,
        store: NodeStore,
        book: VersionBook,
        traffic: Traffic,
        owns: Callable[[str], bool | None] | None = None,
        holders: Holders | None = None,
        clock: Callable[[], float] = time.time,
        unfinished_ttl: float = DEFAULT_TTL,
    ) -> None:
        self.store = store
        self.book = book
        self.traffic = traffic
        self.owns = owns  # None: no ring (a bare node in tests), every name is this node's
        self.holders = holders  # None: no other node to copy to
        self.clock = clock
        self.unfinished_ttl = unfinished_ttl  # seconds a cut-off put's chunks are kept; 0: not
        self.disk = PutStore(store, book.address)
        self.leaving = False  # set before a graceful leave hands the files over
        self._putting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # the puts under way

    @property
    def address(self) -> str:
        return self.book.address

    async def sweep_unfinished(self) -> None:
        """Drop the unfinished puts past their time, but for names being put right now."""
        ttl, now, busy = self.unfinished_ttl, self.clock(), set(self._putting)
        for record in await asyncio.to_thread(self.disk.sweep, now, ttl, busy):
            log.info(
                "dropped the unfinished put of %r: %d bytes kept %g s",
                record.name,
                record.held_bytes,
                ttl,
            )

    async def close(self) -> None:
        # A put its client cut off may still be dropping, in threads, what it stored: the
        # store (closed after this) must outlive it.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT)

    async def put(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        """Store a put; with header.manifest_last, `trailer` gives the manifest with its
        hashes once every chunk has been read."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            refuse_bad_header(header, trailer is not None)
            name = header.manifest.name
            if header.owner_only and self.owns is not None:
                refuse_unless_owner(self.address, self.owns(name), name)
            if self.leaving and not header.replica:
                raise FileError(
                    Refusal.UNAVAILABLE, f"{self.address} is leaving the ring; put {name!r} again"
                )
            if name in self._putting:
                raise FileError(
                    Refusal.ABORTED, f"another put of {name!r} is in progress here; try again"
                )
            self._putting.add(name)
            try:
                return await self._put(self._with_known_hash(header), chunks, trailer)
            finally:
                self._putting.discard(name)
        finally:
            self._tasks.discard(task)

    async def _put(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None,
    ) -> PutOutcome:
        streamed = header.manifest_last
        put = PutUnderWay(header, small=not streamed and header.manifest.size <= SMALL_PUT)
        asking = None
        if self.holders is not None and self._asks_holders(header):
            asking = asyncio.create_task(self.holders.version_elsewhere(header.manifest.name))
        try:
            # A small put's question to the other holders goes out while its bytes arrive;
            # any other put is judged (and maybe refused) at its header, before a byte.
            judge_late = put.small and asking is not None
            elsewhere = None
            version = None
            if not judge_late:
                elsewhere = await asking if asking is not None else None
                if streamed:
                    self._refuse_if_held(header, elsewhere)
                else:
                    version = self._judge(header, elsewhere)
                    if version is None:
                        return await self._unchanged(header, elsewhere)
            try:
                await self._receive(put, chunks)
                if judge_late:
                    assert asking is not None
                    elsewhere = await asking
                    version = self._judge(header, elsewhere)
                if streamed:
                    assert trailer is not None
                    claimed = trailer()
                    check_trailer(header.manifest, claimed, put.digests())
                    header = put.header = replace(header, manifest=claimed)
                    version = self._judge(header, elsewhere)
                if version is None:
                    await asyncio.to_thread(self.store.discard, put.digests())
                    return await self._unchanged(header, elsewhere)
                final = replace(header.manifest, created=version)
                put.lineage = await self._lineage(header, final, elsewhere)
                if put.small:
                    return await self._commit_small(put, final)
                final = await asyncio.to_thread(self.disk.finish, final, put.whole, put.lineage)
            except BaseException as err:
                await put.work.settle()
                # What a cut-off client's put stored stays for its rerun; else it goes.
                ttl, now = self.unfinished_ttl, self.clock()
                await asyncio.to_thread(self.disk.end_unfinished, put, err, ttl, now)
                raise
            finally:
                if put.reservation is not None:
                    self.store.release(put.reservation)
        finally:
            if asking is not None and not asking.done():
                asking.cancel()
        return await self._stored(final, header.replica)

    async def _receive(self, put: PutUnderWay, chunks: AsyncIterable[tuple[int, bytes]]) -> None:
        """Take the chunks: a small put's into memory, any other's onto disk as they come
        (the quota checked before a byte arrives, for the whole put at once)."""
        header = put.header
        manifest = header.manifest
        if not put.small:
            put.reservation = await asyncio.to_thread(
                self.disk.reserve, manifest, header.manifest_last
            )
        async for index, data in chunks:
            if header.manifest_last and index != len(put.stores):
                raise FileError(
                    Refusal.INVALID_ARGUMENT,
                    f"chunk {index} of {manifest.name!r} came where chunk {len(put.stores)} was "
                    "due: a put with its manifest last sends every chunk in order",
                )
            check_chunk(manifest, index, data)
            self.traffic.got(len(data))
            if put.small:
                put.received[index] = data
                continue
            assert put.reservation is not None
            expected = None if header.manifest_last else manifest.chunks[index]
            put.indexes.append(index)
            put.stores.append(
                put.work.add(self.disk.store_chunk(index, data, expected, put.reservation))
            )
            put.work.hash_whole(put.whole, index, data)
            if len(put.stores) % FLUSH_BEHIND == 0:
                # Flush the chunks stored so far while the rest arrive, so that the commit
                # does not wait for the whole file to reach the disk.
                put.work.add(self.disk.flush(put.stores[-2 * FLUSH_BEHIND : -FLUSH_BEHIND]))
            await put.work.room()
        await put.work.finish()

    async def _commit_small(self, put: PutUnderWay, final: Manifest) -> PutOutcome:
        """Store a small put from memory, its copy to the successors going out (from
        memory too) while this node commits."""
        name = final.name
        reservation = put.reservation = self.disk.reserve(final, streamed=False)
        copying: asyncio.Task[int | None] | None = None
        try:
            for index in sorted(put.received):
                data = put.received[index]
                self.disk.put_chunk(index, data, final.chunks[index], reservation)
                put.stored.append(final.chunks[index])
                put.whole.feed(index, data)
            at_hand = self.disk.small_chunks(final, put.received)
            if at_hand is not None and not final.sha256:
                # The copies leave before the commit, so they need the file's hash now.
                whole = hashlib.sha256(b"".join(at_hand[i] for i in range(len(at_hand))))
                final = replace(final, sha256=whole.digest())
            if not put.header.replica and self.holders is not None and at_hand is not None:
                self.book.confirmed[name] = {self.address}
                copying = asyncio.create_task(
                    self.holders.replicate(name, final, at_hand, put.lineage)
                )
            final = await asyncio.to_thread(self.disk.finish, final, put.whole, put.lineage)
        except BaseException:
            if copying is not None:
                copying.cancel()
                await asyncio.gather(copying, return_exceptions=True)
                self.book.confirmed.pop(name, None)
            raise
        finally:
            self.store.release(reservation)
            put.reservation = None
        self.book.confirmed.setdefault(name, {self.address})
        log.info("stored %r (%d bytes) version %.6f", name, final.size, final.created)
        await self.book.changed(name)
        if copying is not None and await copying == 0:
            raise FileError(Refusal.UNAVAILABLE, self._unconfirmed(name))
        return PutOutcome(final, unchanged=False)

    async def _stored(self, final: Manifest, replica: bool) -> PutOutcome:
        """After a large put's commit: announce it, and for a client's put wait for one
        successor's copy."""
        name = final.name
        self.book.confirmed[name] = {self.address}
        log.info("stored %r (%d bytes) version %.6f", name, final.size, final.created)
        await self.book.changed(name)
        if not replica:
            await self._replicated(name)
        return PutOutcome(final, unchanged=False)

    async def _unchanged(self, header: PutHeader, elsewhere: FileVersion | None) -> PutOutcome:
        """The answer to a put with nothing to store: the version kept (here or elsewhere)."""
        manifest = header.manifest
        current = self.store.manifest(manifest.name)
        if current is None and elsewhere is not None:
            current = replace(manifest, created=elsewhere.version, sha256=elsewhere.sha256)
        elif current is not None and not header.replica:
            await self._replicated(manifest.name)  # an earlier put may have stopped short of it
        return PutOutcome(current or manifest, unchanged=True)

    # Decisions, as this node's store tells them.

    def _with_known_hash(self, header: PutHeader) -> PutHeader:
        """A client's manifest without its whole-file hash takes the stored one's when its
        chunks are the same bytes: the same file put again is then found unchanged."""
        manifest = header.manifest
        if manifest.sha256 or header.manifest_last:
            return header
        held = self.store.manifest(manifest.name)
        if held is not None and (held.size, held.chunk_size, held.chunks) == (
            manifest.size,
            manifest.chunk_size,
            manifest.chunks,
        ):
            return replace(header, manifest=replace(manifest, sha256=held.sha256))
        if manifest.chunk_count == 1:  # one chunk: its hash is the file's
            return replace(header, manifest=replace(manifest, sha256=manifest.chunks[0]))
        return header

    def _judge(self, header: PutHeader, elsewhere: FileVersion | None) -> float | None:
        return judge_put(
            self._offered(header),
            self.book.held(header.manifest.name),
            replica=header.replica,
            replace=header.replace,
            now=self.clock(),
            elsewhere=elsewhere,
            admins=self.book.admins,
            content=header.manifest.content,
        )

    @staticmethod
    def _offered(header: PutHeader) -> FileVersion:
        manifest = header.manifest
        ancestry = header.ancestry if header.replica else None
        return FileVersion(
            manifest.name,
            manifest.created,
            manifest.sha256,
            ancestry=ancestry,
            claim=manifest.claim,
        )

    async def _lineage(
        self, header: PutHeader, final: Manifest, elsewhere: FileVersion | None
    ) -> Ancestry | None:
        """The lineage the put stores: a replica's own (the version it displaces kept
        aside first when the two were written apart); for a client's put, what it
        replaces."""
        held = self.book.held(final.name)
        if not header.replica:
            return ancestry_after(put_parent(held, elsewhere))
        offered = replace(self._offered(header), version=final.created)
        if held.live is not None and keep_aside(held.live, offered):
            await self.book.set_aside(final.name, offered)
        return header.ancestry

    def _refuse_if_held(self, header: PutHeader, elsewhere: FileVersion | None) -> None:
        """A put whose hashes come last is taken only for a name nobody holds, or as a
        replace (judged at its closing manifest: an upload's body has no file to hash
        first): otherwise the client puts again with its manifest first, which finds out
        whether the bytes are the same and sends only the chunks this node lacks."""
        name = header.manifest.name
        if not header.replace and (
            self.store.manifest(name) is not None
            or (elsewhere is not None and not elsewhere.deleted)
        ):
            raise FileError(
                Refusal.ALREADY_EXISTS, f"{name!r} already exists; put it with its manifest first"
            )

    def _asks_holders(self, header: PutHeader) -> bool:
        """Whether a put must first ask the other holders for their version: a client's
        put of a name this node has never held nor removed (it may be new to the key)."""
        name = header.manifest.name
        return (
            not header.replica
            and self.store.manifest(name) is None
            and self.store.catalog.tombstone(name) is None
        )

    async def _replicated(self, name: str) -> None:
        """Return once another node confirmed a copy of name (the other copies follow in
        the background), or refuse with UNAVAILABLE: the caller retries, and a retry of
        the same bytes only asks for the copy again."""
        if self.holders is None:
            return
        confirmed = await self.holders.replicate(name, None, None)
        if confirmed == 0:
            raise FileError(Refusal.UNAVAILABLE, self._unconfirmed(name))

    def _unconfirmed(self, name: str) -> str:
        return (
            f"{name!r} is stored on {self.address} but no other node has confirmed a copy "
            "yet; put it again"
        )
