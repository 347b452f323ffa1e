"""The client side of a put: a local file read, hashed and sent to its key's owner.

The owner is the one guessed from the nodes met before, or looked up. A small file is read
and hashed whole while the owner is looked up. A larger one is streamed to an owner that
holds neither the name nor its first chunk (each chunk hashed as it is read, the manifest
last); otherwise it is hashed first, and the owner is sent only the chunks it lacks. The
owner may fail or change under a put: the put looks it up again after a wait.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace as with_changes
from pathlib import Path

from chordshare.chord.messages import NodeRef
from chordshare.files.manifest import Manifest
from chordshare.files.messages import SMALL_PUT, FileError, PutHeader, PutOutcome, Refusal
from chordshare.files.names import check_new_name
from chordshare.files.placement import file_key
from chordshare.files.publisher import Signer
from chordshare.files.unfinished import (
    Resume,
    UnfinishedPut,
    bytes_held,
    changed_since,
    resumable,
    to_send,
)
from chordshare.files.versions import VERSION_STEP
from chordshare.ids import IdSpace
from chordshare.sharing.chunking import (
    LocalFile,
    ManifestHasher,
    chunk_manifest,
    chunk_size_for,
    manifest_of,
    read_for_put,
)
from chordshare.sharing.in_memory import chunks_of
from chordshare.sharing.routes import RouteCache
from chordshare.transport.base import PeerError
from chordshare.transport.files import FilePeers

# The owner may die, leave or change while we put: look it up again after these waits (a
# leaving owner refuses puts until its successors have taken its keys over).
PUT_RETRY_WAITS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
# How long a put waits, in all, on an owner that refuses it for load (it says how long to
# wait each time): a crowd of puts queues up rather than fail.
BUSY_PATIENCE = 60.0


async def _read_chunks(
    path: Path,
    manifest: Manifest,
    hasher: ManifestHasher | None = None,
    wanted: set[int] | None = None,
) -> AsyncIterator[tuple[int, bytes]]:
    """The file's chunks (those `wanted`, or all), read in a thread one ahead of the one
    being sent (flat memory: two chunks at most). With `hasher` (manifest: the promise)
    each chunk is hashed in the thread that reads it, for a manifest sent after the chunks;
    a file that is not the size it was is an OSError."""
    indexes = range(manifest.chunk_count) if wanted is None else sorted(wanted)
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)

    def read(index: int) -> asyncio.Task[bytes]:
        if hasher is not None:
            return asyncio.create_task(asyncio.to_thread(hasher.read_chunk, fd, index))
        offset = index * manifest.chunk_size
        length = manifest.chunk_length(index)
        return asyncio.create_task(asyncio.to_thread(os.pread, fd, length, offset))

    count = len(indexes)
    reading = read(indexes[0]) if count else None
    try:
        for position, index in enumerate(indexes):
            assert reading is not None
            data = await reading
            reading = read(indexes[position + 1]) if position + 1 < count else None
            if hasher is not None and len(data) != manifest.chunk_length(index):
                raise OSError(f"{path}: the file changed while it was being put")
            yield index, data
    finally:
        # A read under way cannot be stopped: let it end before closing its descriptor.
        if reading is not None:
            await asyncio.gather(reading, return_exceptions=True)
        os.close(fd)


def version_after(floor: float | None) -> float:
    """A version to sign: now, or just after `floor` (the version an owner holds) when this
    machine's clock is behind it."""
    now = time.time()
    return now if floor is None else max(now, floor + VERSION_STEP)


async def when_free(
    attempt: Callable[[], Awaitable[PutOutcome]], may_retry: Callable[[], bool] = lambda: True
) -> PutOutcome:
    """Run `attempt` (a put to one owner), and again each time the owner refuses it for load
    and `may_retry`, after the wait the owner asked for (BUSY_PATIENCE in all; a little
    jitter keeps a crowd from coming back at once)."""
    give_up = time.monotonic() + BUSY_PATIENCE
    while True:
        try:
            return await attempt()
        except FileError as err:
            wait = err.retry_after
            if wait is None or not may_retry() or time.monotonic() + wait > give_up:
                raise
            await asyncio.sleep(wait * random.uniform(1.0, 1.5))


class _Progress:
    """A put's progress across its attempts: a retry reports only the bytes it gets past
    the furthest attempt so far, so the total never exceeds the file. `resumed` hears once
    what a rerun of an interrupted put found on the owner."""

    def __init__(
        self,
        report: Callable[[int], None] | None,
        resumed: Callable[[Resume], None] | None = None,
    ) -> None:
        self.report = report
        self.resumed = resumed
        self.shown = 0
        self.attempt = 0

    def resume(self, note: Resume) -> None:
        if self.resumed is not None:
            self.resumed(note)
            self.resumed = None

    def again(self) -> Callable[[int], None]:
        self.attempt = 0
        return self.advance

    def advance(self, nbytes: int) -> None:
        self.attempt += nbytes
        if self.report is not None and self.attempt > self.shown:
            self.report(self.attempt - self.shown)
            self.shown = self.attempt


class Putter:
    """Puts local files (or small bodies held in memory) for a `FileClient`, through its
    peers, routes and lookup (which remembers the owners it finds, for later guesses)."""

    def __init__(
        self,
        space: IdSpace,
        peers: FilePeers,
        routes: RouteCache,
        lookup: Callable[[int], Awaitable[NodeRef]],
        signer: Signer | None = None,
    ) -> None:
        self.space = space
        self.peers = peers
        self.routes = routes
        self.lookup = lookup
        self.signer = signer  # None: puts go unsigned (anyone may replace them)

    def signed(self, manifest: Manifest) -> Manifest:
        """The manifest with its publisher's signature (`files.publisher`)."""
        if self.signer is None:
            return manifest
        claim = self.signer.sign(manifest.name, manifest.created, manifest.content)
        return with_changes(manifest, claim=claim)

    async def put(
        self,
        path: Path,
        name: str | None = None,
        replace: bool = False,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        resumed: Callable[[Resume], None] | None = None,
    ) -> PutOutcome:
        """Put a local file; `progress` hears the bytes as they go (those on the owner
        already at once), `resumed` what a rerun of an interrupted put found there."""
        name = check_new_name(name if name is not None else path.name)
        # The file is looked at (a small one read and hashed) while the owner is looked up,
        # in one thread call.
        reading = asyncio.ensure_future(
            asyncio.to_thread(read_for_put, path, name, chunk_size, SMALL_PUT)
        )
        return await self._put_local(name, reading, replace, _Progress(progress, resumed))

    async def put_bytes(
        self, name: str, data: bytes, replace: bool = False, chunk_size: int | None = None
    ) -> PutOutcome:
        """Store bytes held in memory (a small upload's body) under name: a put like a
        local file's, which may be sent again as often as it takes."""
        name = check_new_name(name)
        size = chunk_size or chunk_size_for(len(data))
        local = LocalFile(Path(name), name, len(data), size, manifest_of(data, name, size), data)
        reading: asyncio.Future[LocalFile] = asyncio.get_running_loop().create_future()
        reading.set_result(local)
        return await self._put_local(name, reading, replace, _Progress(None))

    async def _put_local(
        self,
        name: str,
        reading: Awaitable[LocalFile],
        replace: bool,
        counter: _Progress,
    ) -> PutOutcome:
        key = file_key(self.space, name)
        guess = self.routes.guess(key)
        owner: NodeRef | None = None
        try:
            if guess is None:
                owner = await self.lookup(key)
        except PeerError:
            pass  # looked up again in the loop
        finally:
            local = await reading
        if guess is not None:
            try:
                return await self._put_when_free(guess, local, replace, counter, guessed=True)
            except FileError as err:
                if err.refusal not in (Refusal.OUT_OF_RANGE, Refusal.UNAVAILABLE):
                    raise
            except PeerError:
                self.routes.forget(guess)
        last_error: Exception | None = None
        for wait in PUT_RETRY_WAITS:
            await asyncio.sleep(wait)
            if owner is None:
                owner = await self.lookup(key)
            try:
                return await self._put_when_free(owner, local, replace, counter)
            except (PeerError, FileError) as err:
                # Not now (UNAVAILABLE: leaving, or no copy confirmed yet), or no answer:
                # the owner may have changed, so it is looked up again.
                if isinstance(err, FileError) and err.refusal is not Refusal.UNAVAILABLE:
                    raise
                last_error = err
                self.routes.forget(owner)
                owner = None
        assert last_error is not None
        raise last_error

    async def _put_when_free(
        self,
        owner: NodeRef,
        local: LocalFile,
        replace: bool,
        progress: _Progress,
        guessed: bool = False,
    ) -> PutOutcome:
        """Put to `owner`, waiting as it asks while it refuses for load."""
        return await when_free(lambda: self._put_to(owner, local, replace, progress, guessed))

    async def _put_to(
        self,
        owner: NodeRef,
        local: LocalFile,
        replace: bool,
        progress: _Progress,
        guessed: bool = False,
    ) -> PutOutcome:
        answerer = self.peers.at(owner.address)
        resuming: UnfinishedPut | None = None
        if local.manifest is None:
            # Not hashed yet. A name new to the owner is sent as it is hashed (the file is
            # read once). One it holds is hashed first, which finds the same bytes
            # unchanged and sends only the chunks the owner lacks; so is a new name whose
            # first chunk the owner has (the same content under another name, most
            # likely: it is then not sent again), and a put the owner kept unfinished
            # (`files.unfinished`: a rerun sends only the rest). The owner refuses a
            # streamed put of a name it turns out to hold (another put won the race) at
            # its header, and the file is then hashed first too.
            (asked, unfinished), lacks_first = await asyncio.gather(
                answerer.find_for_put(local.name, owner_only=guessed),
                self._lacks_first_chunk(owner, local),
            )
            created = time.time()
            if resumable(unfinished, local.size, local.chunk_size):
                resuming = unfinished
            elif asked is None and lacks_first:
                try:
                    streaming = progress.again()
                    return await self._put_streamed(owner, local, replace, streaming, guessed)
                except FileError as err:
                    if err.refusal is not Refusal.ALREADY_EXISTS and err.version_floor is None:
                        raise
                    created = version_after(err.version_floor)
            local.manifest = await asyncio.to_thread(
                chunk_manifest, local.path, local.name, local.chunk_size, created
            )
        send = functools.partial(self._send, owner, local, replace, progress, guessed)
        try:
            return await send(local.manifest, resuming)
        except FileError as err:
            if err.version_floor is None or self.signer is None:
                raise
            # This machine's clock is behind the version the owner holds: sign again above.
            return await send(
                with_changes(local.manifest, created=version_after(err.version_floor)), None
            )

    async def _send(
        self,
        owner: NodeRef,
        local: LocalFile,
        replace: bool,
        progress: _Progress,
        guessed: bool,
        manifest: Manifest,
        resuming: UnfinishedPut | None,
    ) -> PutOutcome:
        """Send the chunks the owner lacks (of a put it kept unfinished, the rest), with
        the manifest first."""
        answerer = self.peers.at(owner.address)
        manifest = self.signed(manifest)
        changed = resuming is not None and changed_since(resuming, manifest)
        # Ask which chunks the owner lacks (content it has under another name is not sent
        # again); for one chunk the answer would cost more than it saves.
        if len(manifest.chunks) > 1 and not changed:
            missing = await answerer.missing_chunks(manifest.chunks)
        else:
            missing = list(range(len(manifest.chunks)))
        sending = to_send(manifest, missing, changed)
        held = bytes_held(manifest, sending)
        if resuming is not None:
            progress.resume(Resume(held, changed))
        advance = progress.again()
        if held:
            advance(held)
        if local.data is not None:
            read = chunks_of(local.data, manifest)
        else:
            read = _read_chunks(local.path, manifest, wanted=sending)
        chunks = self._counted(read, sending, advance)
        header = PutHeader(manifest, replace=replace, owner_only=guessed)
        return await answerer.put_file(header, chunks)

    async def _lacks_first_chunk(self, owner: NodeRef, local: LocalFile) -> bool:
        if local.first_chunk is None:
            return True
        return bool(await self.peers.at(owner.address).missing_chunks([local.first_chunk]))

    async def _put_streamed(
        self,
        owner: NodeRef,
        local: LocalFile,
        replace: bool,
        progress: Callable[[int], None],
        guessed: bool,
    ) -> PutOutcome:
        """Every chunk in order, hashed as it is read, then the manifest (manifest_last)."""
        known = {0: local.first_chunk} if local.first_chunk is not None else None
        hasher = ManifestHasher(local.promise(), known)
        header = PutHeader(hasher.promise, replace=replace, owner_only=guessed, manifest_last=True)
        every = set(range(hasher.promise.chunk_count))
        chunks = self._counted(_read_chunks(local.path, hasher.promise, hasher), every, progress)
        return await self.peers.at(owner.address).put_file(
            header, chunks, lambda: self.signed(hasher.manifest())
        )

    @staticmethod
    async def _counted(
        chunks: AsyncIterator[tuple[int, bytes]],
        wanted: set[int],
        progress: Callable[[int], None],
    ) -> AsyncIterator[tuple[int, bytes]]:
        async for index, data in chunks:
            if index in wanted:
                yield index, data
                progress(len(data))
