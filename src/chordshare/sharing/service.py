"""What a node answers about files: it stores, serves, indexes and locates them.

The serving half of file sharing, transport-free: the gRPC servicer and the in-memory peers
call these methods. Refusals are `FileError`s. Disk work and hashing run in threads so a
large transfer never blocks the event loop.

Which version wins is decided in `sharing.core.versions`.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from dataclasses import replace
from typing import Any, TypeVar

from chordshare.allocator import HeapTrimmer
from chordshare.sharing.core.soft_table import SoftTable
from chordshare.sharing.core.versions import (
    Held,
    OfferVerdict,
    judge_offer,
    judge_put,
    removal_applies,
    removal_version,
)
from chordshare.sharing.names import BadName, check_sent_name
from chordshare.sharing.peers import (
    INLINE_LIMIT,
    SMALL_PUT,
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
    StoredFile,
)
from chordshare.sharing.shared_dir import SharedDirectory
from chordshare.storage.catalog import Manifest
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import NodeStore, QuotaExceeded, Reservation
from chordshare.transport.limits import MAX_CHUNKS

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_CHUNK_SIZE = 8 * 1024 * 1024
PUT_PIPELINE = 6  # chunk stores and hash steps of one put under way at once
FLUSH_BEHIND = 16  # chunks between flushes of a put's earlier chunks
CLOSE_WAIT = 10.0  # seconds a closing service waits for puts still cleaning up


class _WholeHash:
    """The whole file's SHA-256, fed with chunks as they arrive in order; chunks that
    arrive out of order (or were already stored) are read back at the end."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.next_index = 0

    def feed(self, index: int, data: bytes) -> None:
        if index == self.next_index:
            self.hasher.update(data)
            self.next_index += 1


class _Pipeline:
    """The work of a put under way: chunks stored in threads (hashing releases the GIL, so
    two cores work at once) while the next ones arrive, the whole-file hash following in
    order in a chain of its own, and flushes. At most PUT_PIPELINE tasks wait."""

    def __init__(self) -> None:
        self.work: set[asyncio.Task[Any]] = set()
        self._hashing: asyncio.Task[None] | None = None

    def add(self, step: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(step)
        self.work.add(task)
        return task

    def hash_whole(self, whole: _WholeHash, index: int, data: bytes) -> None:
        """Feed chunk `index` to the whole-file hash after the chunk before it."""
        self._hashing = self.add(self._feed_after(self._hashing, whole, index, data))

    @staticmethod
    async def _feed_after(
        previous: asyncio.Task[None] | None, whole: _WholeHash, index: int, data: bytes
    ) -> None:
        if previous is not None:
            await previous
        await asyncio.to_thread(whole.feed, index, data)

    async def room(self) -> None:
        """Wait until fewer than PUT_PIPELINE tasks are under way; raise what one raised."""
        while len(self.work) >= PUT_PIPELINE:
            done, self.work = await asyncio.wait(self.work, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()

    async def finish(self) -> None:
        for task in asyncio.as_completed(list(self.work)):
            await task
        self.work.clear()

    async def settle(self) -> None:
        """Let every task end, failed or not (a thread cannot be stopped)."""
        await asyncio.gather(*self.work, return_exceptions=True)


def _refuse_bad_manifest(header: PutHeader, promised: bool = False) -> None:
    """A put's manifest, or (promised) the one a put that sends its hashes last starts
    with: its name, size and chunk size only."""
    manifest = header.manifest
    try:
        check_sent_name(manifest.name, header.replica, header.legacy_name)
        if not promised:
            manifest.check()
    except (BadName, ValueError) as err:
        raise FileError(Refusal.INVALID_ARGUMENT, str(err)) from None
    if manifest.chunk_size > MAX_CHUNK_SIZE:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"chunks are at most {MAX_CHUNK_SIZE} bytes, the manifest says {manifest.chunk_size}",
        )
    if manifest.chunk_count > MAX_CHUNKS:
        raise FileError(Refusal.INVALID_ARGUMENT, f"a file has at most {MAX_CHUNKS} chunks")


def _refuse_bad_promise(header: PutHeader, trailer: Callable[[], Manifest] | None) -> None:
    """The header of a put whose hashes come last."""
    if header.replica or trailer is None:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            "only a client's put streamed with PutFile may send its manifest last",
        )


def _check_trailer(
    promise: Manifest, claimed: Manifest, digests: Sequence[bytes], whole: _WholeHash
) -> None:
    """The manifest that closes a streamed put against its header and what arrived."""
    if (claimed.name, claimed.size, claimed.chunk_size) != (
        promise.name,
        promise.size,
        promise.chunk_size,
    ):
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"the closing manifest of {promise.name!r} is not the one its header promised "
            f"({claimed.name!r}, {claimed.size} bytes in {claimed.chunk_size}-byte chunks)",
        )
    if len(digests) != promise.chunk_count:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"the put of {promise.name!r} ended after {len(digests)} of "
            f"{promise.chunk_count} chunks",
        )
    wrong = [i for i, (a, b) in enumerate(zip(claimed.chunks, digests, strict=True)) if a != b]
    if wrong:
        raise FileError(
            Refusal.DATA_LOSS,
            f"{len(wrong)} chunks of {promise.name!r} do not match the hashes of its manifest "
            f"(first: chunk {wrong[0]})",
        )
    if whole.hasher.digest() != claimed.sha256:
        raise FileError(
            Refusal.DATA_LOSS, f"the chunks of {promise.name!r} do not add up to its SHA-256"
        )


class FileService:
    """The files of one node: its store, its shared directory and the soft records others
    publish to it. `address` is the node's advertised address (it names itself as a holder)."""

    def __init__(
        self,
        address: str,
        store: NodeStore,
        shared: SharedDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.store = store
        self.shared = shared
        self.clock = clock
        self.index = SoftTable()
        self.locators = SoftTable()
        # Holders known to have a file's current version (from replication), by name.
        self.confirmed: dict[str, set[str]] = {}
        self._putting: set[str] = set()
        self._puts: set[asyncio.Task[Any]] = set()  # the tasks running put_file
        self.bytes_served = 0  # chunk bytes sent to peers and clients that fetched them
        self.bytes_received = 0  # chunk bytes received by puts and replica pushes
        self.trimmer = HeapTrimmer()  # gives back the heap the chunks passed through
        # Asks the other holders of a name which version they hold (set by the peer): a
        # node that just became a name's owner may not have its copy yet.
        self.ask_holders: Callable[[str], Awaitable[FileVersion | None]] | None = None
        # Tells the other holders of a name about a removal (set by the peer).
        self.tell_holders: Callable[[FileVersion], Awaitable[None]] | None = None
        # Copies a just-put name to another holder and says how many confirmed it (None:
        # there is no other node). Set by the peer; a put is acknowledged only after one
        # confirmed, so that the crash of this node cannot lose it.
        # replicate(name, manifest, chunks): copy a just-put name to the successors; the
        # manifest and chunks (index -> bytes) when they are at hand, else read from here.
        self.replicate: (
            Callable[[str, Manifest | None, Mapping[int, bytes] | None], Awaitable[int | None]]
            | None
        ) = None
        # Whether a name's key is in (predecessor, this node] on the ring now (set by the
        # peer); without a ring (a bare service in tests) every name is this node's.
        self.owns_name: Callable[[str], bool] | None = None
        self.leaving = False  # set before a graceful leave hands the files over
        self._listeners: list[Callable[[str], Awaitable[None] | None]] = []

    def _received(self, nbytes: int) -> None:
        self.bytes_received += nbytes
        self.trimmer.moved(nbytes)

    def _served(self, nbytes: int) -> None:
        self.bytes_served += nbytes
        self.trimmer.moved(nbytes)

    async def close(self) -> None:
        # A put its client cut off may still be dropping, in threads, what it stored: the
        # store (closed after this) must outlive it.
        if self._puts:
            await asyncio.wait(set(self._puts), timeout=CLOSE_WAIT)
        await self.trimmer.close()

    def on_change(self, listener: Callable[[str], Awaitable[None] | None]) -> None:
        """Call listener(name) after a file is stored, replaced or removed here."""
        self._listeners.append(listener)

    async def _changed(self, name: str) -> None:
        for listener in self._listeners:
            result = listener(name)
            if result is not None:
                await result

    def _refuse_unless_owner(self, name: str) -> None:
        """For a request sent to this node as the guessed owner of name (owner_only): the
        sender's view of the ring may be old, and only the owner may judge a put or say a
        name is missing, so a node that does not own the key refuses and does nothing."""
        if self.owns_name is not None and not self.owns_name(name):
            raise FileError(
                Refusal.OUT_OF_RANGE,
                f"{self.address} does not own the key of {name!r}; look its owner up",
            )

    # Storing.

    def _held(self, name: str) -> Held:
        """What this node holds of name, for the version decisions."""
        manifest = self.store.manifest(name)
        live = None
        if manifest is not None:
            live = FileVersion.held(name, manifest.created, manifest.sha256)
        size = manifest.size if manifest is not None else None
        return Held(name, live, size, self.store.catalog.tombstone(name))

    def _version_for_put(
        self, header: PutHeader, elsewhere: FileVersion | None = None
    ) -> float | None:
        """The version a put will store, or None when there is nothing to store.
        `elsewhere` is the newest version the other holders of the name know of."""
        manifest = header.manifest
        return judge_put(
            FileVersion(manifest.name, manifest.created, manifest.sha256),
            self._held(manifest.name),
            replica=header.replica,
            replace=header.replace,
            now=self.clock(),
            elsewhere=elsewhere,
        )

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        """Store a put; with header.manifest_last, `trailer` gives the manifest with its
        hashes once every chunk has been read."""
        task = asyncio.current_task()
        assert task is not None
        self._puts.add(task)
        try:
            return await self._put_file(header, chunks, trailer)
        finally:
            self._puts.discard(task)

    async def _put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None,
    ) -> PutOutcome:
        manifest = header.manifest
        if header.manifest_last:
            _refuse_bad_promise(header, trailer)
        _refuse_bad_manifest(header, promised=header.manifest_last)
        name = manifest.name
        if header.owner_only:
            self._refuse_unless_owner(name)
        if self.leaving and not header.replica:
            raise FileError(
                Refusal.UNAVAILABLE, f"{self.address} is leaving the ring; put {name!r} again"
            )
        if name in self._putting:
            raise FileError(
                Refusal.ABORTED, f"another put of {name!r} is in progress here; try again"
            )
        self._putting.add(name)
        if header.manifest_last:
            assert trailer is not None
            try:
                return await self._put_streamed(header, chunks, trailer)
            finally:
                self._putting.discard(name)
        if manifest.size <= SMALL_PUT:
            try:
                return await self._put_small(header, chunks)
            finally:
                self._putting.discard(name)
        try:
            elsewhere = None
            if self.ask_holders is not None and self._asks_holders(header):
                elsewhere = await self.ask_holders(name)
            version = self._version_for_put(header, elsewhere)
        except BaseException:
            self._putting.discard(name)
            raise
        if version is None:
            self._putting.discard(name)
            return await self._unchanged(header, elsewhere)
        try:
            # The quota is checked before a byte arrives, for the whole put at once.
            reservation = await asyncio.to_thread(self._reserve, manifest)
        except BaseException:
            self._putting.discard(name)
            raise
        stored: list[bytes] = []
        work = _Pipeline()
        try:
            whole = _WholeHash()
            async for index, data in chunks:
                self._check_chunk(manifest, index, data)
                self._received(len(data))
                stored.append(manifest.chunks[index])
                expected = manifest.chunks[index]
                work.add(self._store_chunk(index, data, expected, reservation))
                work.hash_whole(whole, index, data)
                if len(stored) % FLUSH_BEHIND == 0:
                    # Flush the chunks stored so far while the rest arrive, so that the
                    # commit does not wait for the whole file to reach the disk.
                    behind = stored[-2 * FLUSH_BEHIND : -FLUSH_BEHIND]
                    work.add(asyncio.to_thread(self.store.chunks.sync, behind))
                await work.room()
            await work.finish()
            final = replace(manifest, created=version)
            await asyncio.to_thread(self._finish, final, whole)
        except BaseException:
            # Let chunk writes already under way end (a thread cannot be stopped) so that
            # none lands after the clean-up, then drop what no committed file uses.
            await work.settle()
            await asyncio.to_thread(self.store.discard, stored)
            raise
        finally:
            self.store.release(reservation)
            self._putting.discard(name)
        return await self._stored(final, header.replica)

    async def _stored(self, final: Manifest, replica: bool) -> PutOutcome:
        """After a large put's commit: announce it, and for a client's put wait for one
        successor's copy."""
        name = final.name
        self.confirmed[name] = {self.address}
        log.info("stored %r (%d bytes) version %.6f", name, final.size, final.created)
        await self._changed(name)
        if not replica:
            await self._replicated(name)
        return PutOutcome(final, unchanged=False)

    async def _put_streamed(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest],
    ) -> PutOutcome:
        """put_file for a put whose hashes follow its chunks (manifest_last): the client
        reads its file once, hashing as it sends. Taken only for a name that neither this
        node nor (while it may be new to its keys) the other holders hold: otherwise it is
        refused at once with ALREADY_EXISTS, and the client puts again with the manifest
        first, which finds out whether the bytes are the same and sends only the chunks
        this node lacks. The chunks come in order; each is hashed here as it is stored,
        and the closing manifest must list exactly those hashes and the whole file's."""
        promise = header.manifest
        name = promise.name
        elsewhere = None
        if self.ask_holders is not None and self._asks_holders(header):
            elsewhere = await self.ask_holders(name)
        if self.store.manifest(name) is not None or (
            elsewhere is not None and not elsewhere.deleted
        ):
            raise FileError(
                Refusal.ALREADY_EXISTS,
                f"{name!r} already exists; put it with its manifest first",
            )
        try:
            reservation = await asyncio.to_thread(self.store.reserve, promise.size)
        except QuotaExceeded as err:
            raise FileError(Refusal.RESOURCE_EXHAUSTED, str(err)) from None
        stores: list[asyncio.Task[bytes]] = []  # by index
        work = _Pipeline()
        try:
            whole = _WholeHash()
            async for index, data in chunks:
                if index != len(stores):
                    raise FileError(
                        Refusal.INVALID_ARGUMENT,
                        f"chunk {index} of {name!r} came where chunk {len(stores)} was due: "
                        "a put with its manifest last sends every chunk in order",
                    )
                self._check_chunk(promise, index, data)
                self._received(len(data))
                stores.append(work.add(self._store_chunk(index, data, None, reservation)))
                work.hash_whole(whole, index, data)
                if len(stores) % FLUSH_BEHIND == 0:
                    work.add(self._flush_stored(stores[-2 * FLUSH_BEHIND : -FLUSH_BEHIND]))
                await work.room()
            await work.finish()
            claimed = trailer()
            _check_trailer(promise, claimed, [store.result() for store in stores], whole)
            version = self._version_for_put(replace(header, manifest=claimed), elsewhere)
            if version is None:
                await asyncio.to_thread(self.store.discard, list(claimed.chunks))
                return await self._unchanged(header, elsewhere)
            final = replace(claimed, created=version)
            await asyncio.to_thread(self._finish, final, whole)
        except BaseException:
            await work.settle()
            kept = [
                s.result() for s in stores if s.done() and not s.cancelled() and not s.exception()
            ]
            await asyncio.to_thread(self.store.discard, kept)
            raise
        finally:
            self.store.release(reservation)
        return await self._stored(final, replica=False)

    async def _flush_stored(self, stores: Sequence[asyncio.Task[bytes]]) -> None:
        """Flush chunks a streamed put has stored (their hashes are their tasks' results)."""
        digests = [await store for store in stores]
        await asyncio.to_thread(self.store.chunks.sync, digests)

    async def _put_small(
        self, header: PutHeader, chunks: AsyncIterable[tuple[int, bytes]]
    ) -> PutOutcome:
        """put_file for a small file, with its waits overlapped: the question to the other
        holders (a node new to its keys) goes out while the bytes arrive, and the copies to
        the successors go out, from memory, while this node commits. The answer still waits
        for this node's commit and one successor's confirmed copy. Without that question
        the put is judged (and maybe refused) at its header, as a large one is."""
        manifest = header.manifest
        name = manifest.name
        asking = None
        if self.ask_holders is not None and self._asks_holders(header):
            asking = asyncio.create_task(self.ask_holders(name))
        elsewhere = None
        version = None if asking is not None else self._version_for_put(header)
        received: dict[int, bytes] = {}
        if asking is not None or version is not None:
            try:
                async for index, data in chunks:
                    self._check_chunk(manifest, index, data)
                    self._received(len(data))
                    received[index] = data
                if asking is not None:
                    elsewhere = await asking
                    version = self._version_for_put(header, elsewhere)
            finally:
                if asking is not None and not asking.done():
                    asking.cancel()
        if version is None:
            return await self._unchanged(header, elsewhere)
        final = replace(manifest, created=version)
        reservation = self._reserve(manifest)
        stored: list[bytes] = []
        copying: asyncio.Task[int | None] | None = None
        try:
            whole = _WholeHash()
            for index in sorted(received):
                self._put_chunk(index, received[index], manifest.chunks[index], reservation)
                stored.append(manifest.chunks[index])
                whole.feed(index, received[index])
            at_hand = self._small_chunks(manifest, received)
            if not header.replica and self.replicate is not None and at_hand is not None:
                self.confirmed[name] = {self.address}
                copying = asyncio.create_task(self.replicate(name, final, at_hand))
            await asyncio.to_thread(self._finish, final, whole)
        except BaseException:
            if copying is not None:
                copying.cancel()
                await asyncio.gather(copying, return_exceptions=True)
                self.confirmed.pop(name, None)
            await asyncio.to_thread(self.store.discard, stored)
            raise
        finally:
            self.store.release(reservation)
        self.confirmed.setdefault(name, {self.address})
        log.info("stored %r (%d bytes) version %.6f", name, final.size, final.created)
        await self._changed(name)
        if copying is not None and await copying == 0:
            raise FileError(Refusal.UNAVAILABLE, self._unconfirmed(name))
        return PutOutcome(final, unchanged=False)

    async def _unchanged(self, header: PutHeader, elsewhere: FileVersion | None) -> PutOutcome:
        """The answer to a put with nothing to store: the version kept (here or elsewhere)."""
        manifest = header.manifest
        current = self.store.manifest(manifest.name)
        if current is None and elsewhere is not None:
            current = replace(manifest, created=elsewhere.version)
        elif current is not None and not header.replica:
            await self._replicated(manifest.name)  # an earlier put may have stopped short of it
        return PutOutcome(current or manifest, unchanged=True)

    def _small_chunks(
        self, manifest: Manifest, received: dict[int, bytes]
    ) -> dict[int, bytes] | None:
        """Every chunk of a small file: received, or stored here already (a client sends
        only those MissingChunks named). None if one is nowhere: the commit refuses it."""
        chunks: dict[int, bytes] = {}
        for index, digest in enumerate(manifest.chunks):
            if index in received:
                chunks[index] = received[index]
            elif self.store.has_chunk(digest):
                chunks[index] = self.store.read_chunk(digest)
            else:
                return None
        return chunks

    async def _replicated(self, name: str) -> None:
        """Return once another node confirmed a copy of name (the other copies follow in
        the background), or refuse with UNAVAILABLE: the caller retries, and a retry of
        the same bytes only asks for the copy again."""
        if self.replicate is None:
            return
        confirmed = await self.replicate(name, None, None)
        if confirmed == 0:
            raise FileError(Refusal.UNAVAILABLE, self._unconfirmed(name))

    def _unconfirmed(self, name: str) -> str:
        return (
            f"{name!r} is stored on {self.address} but no other node has confirmed a copy "
            "yet; put it again"
        )

    def _reserve(self, manifest: Manifest) -> Reservation:
        """Reserve the bytes of the chunks of manifest not stored here yet."""
        lacking: dict[bytes, int] = {}
        for index, digest in enumerate(manifest.chunks):
            if digest not in lacking and not self.store.has_chunk(digest):
                lacking[digest] = manifest.chunk_length(index)
        try:
            return self.store.reserve(sum(lacking.values()))
        except QuotaExceeded as err:
            raise FileError(Refusal.RESOURCE_EXHAUSTED, str(err)) from None

    async def _store_chunk(
        self, index: int, data: bytes, expected: bytes | None, reservation: Reservation
    ) -> bytes:
        return await asyncio.to_thread(self._put_chunk, index, data, expected, reservation)

    def _put_chunk(
        self, index: int, data: bytes, expected: bytes | None, reservation: Reservation
    ) -> bytes:
        """Store chunk `index` of a put (checked against `expected` when the manifest came
        first), its failures as the refusals the client hears. Returns its hash."""
        try:
            return self.store.put_chunk(data, expected, reservation)
        except ChunkError as err:
            raise FileError(Refusal.DATA_LOSS, f"chunk {index}: {err}") from None
        except QuotaExceeded as err:
            raise FileError(Refusal.RESOURCE_EXHAUSTED, str(err)) from None
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise FileError(
                Refusal.RESOURCE_EXHAUSTED,
                f"{self.address} has no room left on its disk for chunk {index}: {err.strerror}",
            ) from None

    def _asks_holders(self, header: PutHeader) -> bool:
        """Whether a put must first ask the other holders for their version: a client's
        put of a name this node has never held nor removed (it may be new to the key)."""
        name = header.manifest.name
        return (
            not header.replica
            and self.store.manifest(name) is None
            and self.store.catalog.tombstone(name) is None
        )

    @staticmethod
    def _check_chunk(manifest: Manifest, index: int, data: bytes) -> None:
        if not 0 <= index < manifest.chunk_count:
            raise FileError(
                Refusal.INVALID_ARGUMENT,
                f"chunk {index} is out of range: {manifest.name!r} has {manifest.chunk_count}",
            )
        expected_length = manifest.chunk_length(index)
        if len(data) != expected_length:
            raise FileError(
                Refusal.INVALID_ARGUMENT,
                f"chunk {index} of {manifest.name!r} has {len(data)} bytes, "
                f"the manifest says {expected_length}",
            )

    def _finish(self, manifest: Manifest, whole: _WholeHash) -> None:
        """Check that every chunk is here and that they add up to the file, then list it."""
        missing = [i for i, d in enumerate(manifest.chunks) if not self.store.has_chunk(d)]
        if missing:
            raise FileError(
                Refusal.FAILED_PRECONDITION,
                f"the put of {manifest.name!r} ended with {len(missing)} of "
                f"{len(manifest.chunks)} chunks missing (first: {missing[0]})",
            )
        for index in range(whole.next_index, len(manifest.chunks)):
            digest = manifest.chunks[index]
            try:
                data = self.store.read_chunk(digest)
            except ChunkError:
                # A copy this node already had (the client did not send it) is damaged on
                # disk. Kept, it would fail every put of these bytes; dropped, the next put
                # is told it is missing and sends it, which repairs the files that use it.
                self.store.drop_chunk(digest)
                raise FileError(
                    Refusal.DATA_LOSS,
                    f"chunk {index} of {manifest.name!r} was damaged on {self.address}'s disk "
                    "and has been dropped; put the file again to restore it",
                ) from None
            whole.hasher.update(data)
        if whole.hasher.digest() != manifest.sha256:
            raise FileError(
                Refusal.DATA_LOSS,
                f"the chunks of {manifest.name!r} do not add up to its SHA-256",
            )
        self.store.commit(manifest)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        has = self.store.has_chunk
        return await asyncio.to_thread(
            lambda: [i for i, d in enumerate(digests) if len(d) != 32 or not has(d)]
        )

    # Serving.

    async def fetch_chunks(
        self, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        stored = self.store.by_sha256(sha256)
        if stored:
            manifest = stored[0]
            read = self._read_stored
        elif self.shared is not None and (local := self.shared.by_sha256(sha256)) is not None:
            manifest = local.manifest
            read = self.shared.read_chunk
        else:
            raise FileError(Refusal.NOT_FOUND, f"no file with sha256 {sha256.hex()} here")
        for index in indexes:
            if not 0 <= index < len(manifest.chunks):
                raise FileError(Refusal.INVALID_ARGUMENT, f"no chunk {index} in that file")
        # One chunk read ahead: the next is read from disk while this one is sent.
        reading: asyncio.Task[bytes] | None = None
        try:
            for position, index in enumerate(indexes):
                if reading is None:
                    reading = asyncio.create_task(asyncio.to_thread(read, manifest, index))
                try:
                    data = await reading
                except (ChunkError, OSError) as err:
                    raise FileError(Refusal.NOT_FOUND, f"chunk {index}: {err}") from None
                reading = None
                self._served(len(data))
                if position + 1 < len(indexes):
                    following = indexes[position + 1]
                    reading = asyncio.create_task(asyncio.to_thread(read, manifest, following))
                yield index, data
        finally:
            if reading is not None:
                reading.cancel()

    def _read_stored(self, manifest: Manifest, index: int) -> bytes:
        # Not re-hashed here: the receiver verifies every chunk against the manifest.
        return self.store.read_chunk(manifest.chunks[index], verify=False)

    async def find_file(
        self, name: str, inline_up_to: int = 0, owner_only: bool = False
    ) -> FoundFile | None:
        """The newest version of name known here and who serves it; with the bytes too
        when the file is stored here and at most `inline_up_to` (and INLINE_LIMIT) long."""
        if owner_only:
            self._refuse_unless_owner(name)
        stored = self.store.manifest(name)
        sharers = [loc for loc in self.locators.get(name) if isinstance(loc, Locator)]
        if stored is not None:
            manifest = stored
            holders = [self.address, *sorted(self.confirmed.get(name, set()) - {self.address})]
        elif sharers:
            manifest = max(sharers, key=lambda loc: loc.manifest.created).manifest
            holders = []
        else:
            return None
        holders += [
            loc.address
            for loc in sharers
            if loc.manifest.sha256 == manifest.sha256 and loc.address not in holders
        ]
        data = None
        if stored is not None and 0 < stored.size <= min(inline_up_to, INLINE_LIMIT):
            data = await asyncio.to_thread(self._read_whole, stored)
        return FoundFile(manifest, tuple(holders), data)

    def _read_whole(self, manifest: Manifest) -> bytes | None:
        try:
            return b"".join(self.store.read_chunk(digest) for digest in manifest.chunks)
        except (ChunkError, OSError) as err:  # the download fetches and verifies instead
            log.warning("could not read %r whole: %s", manifest.name, err)
            return None

    async def list_files(self) -> FileListing:
        files = [StoredFile(m, shared=False) for m in self.store.manifests()]
        if self.shared is not None:
            files += [StoredFile(s.manifest, shared=True) for s in self.shared.files()]
        return FileListing(tuple(files), self.store.used_bytes(), self.store.max_bytes)

    # Replication.

    def versions(self) -> list[FileVersion]:
        """Every name held here, as offered to other holders (tombstones included)."""
        live = [FileVersion.held(m.name, m.created, m.sha256) for m in self.store.manifests()]
        gone = [
            FileVersion.held(name, version, b"", deleted=True)
            for name, version in self.store.catalog.tombstones()
        ]
        return live + gone

    def version_of(self, name: str) -> FileVersion | None:
        return self._held(name).newest()

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        wanted: list[str] = []
        held_newer: list[FileVersion] = []
        for offered in versions:
            mine = self.version_of(offered.name)
            verdict = judge_offer(mine, offered)
            if verdict is OfferVerdict.HOLD_NEWER and mine is not None:
                held_newer.append(mine)
            elif verdict is OfferVerdict.REMOVE:
                await self.delete(offered.name, offered.version, replica=True)
            elif verdict is OfferVerdict.WANT:
                wanted.append(offered.name)
        return OfferAnswer(tuple(wanted), tuple(held_newer))

    async def delete(self, name: str, version: float = 0.0, replica: bool = False) -> bool:
        held = self._held(name)
        if replica:
            if not removal_applies(held, version):
                return False  # a newer put outlived this removal
        else:
            version = removal_version(held, self.clock())
        await asyncio.to_thread(self.store.remove, name, version)
        self.confirmed.pop(name, None)
        if held.live is not None:
            log.info("removed %r at version %.6f", name, version)
        if not replica and self.tell_holders is not None:
            # The other holders learn of a removal before it is confirmed, so that a get
            # right after it cannot be served an old copy by one of them.
            await self.tell_holders(FileVersion.held(name, version, b"", deleted=True))
        await self._changed(name)
        return held.live is not None

    # Index and locators: soft state that publishers refresh.

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        if not remove:
            self._refuse_unless_room(self.index, [(r.key, r.entry.name) for r in records])
        for record in records:
            if remove:
                self.index.remove(record.key, record.entry.name)
            else:
                self.index.put(record.key, record.entry.name, record.entry, ttl)

    @staticmethod
    def _refuse_unless_room(table: SoftTable, items: Sequence[tuple[str, str]]) -> None:
        if not table.room_for(items):
            raise FileError(
                Refusal.RESOURCE_EXHAUSTED,
                f"this node keeps at most {table.limit} published records; it has {len(table)}",
            )

    async def query_index(self, key: str) -> list[IndexEntry]:
        entries = [e for e in self.index.get(key) if isinstance(e, IndexEntry)]
        return sorted(entries, key=lambda e: e.name)

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        self._refuse_unless_room(
            self.locators, [(loc.manifest.name, loc.address) for loc in locators]
        )
        for locator in locators:
            self.locators.put(locator.manifest.name, locator.address, locator, ttl)
