"""Downloading a file's chunks from every peer that holds it, verified and resumable.

Like BitTorrent pulling pieces: each holder gets two workers (lanes) that ask for small
batches of chunk indexes from a shared queue (so fast holders take more, and one lane asks
while the other's batch streams in), with at most `per_peer_inflight` chunks outstanding
per holder. Every chunk is checked against the
manifest's SHA-256 as it arrives; a holder that lies, corrupts, fails or stalls is dropped
for the rest of the download and its outstanding chunks go back to the queue. When the
queue runs dry, idle holders also fetch chunks that have been outstanding elsewhere for a
while (endgame) and the first verified copy wins, so one slow peer cannot hold up the tail.

Bytes land at their offset in `out + ".part"`, which a later call resumes from (chunks whose
bytes already match are kept), written and read back around the page cache where the file
system allows (`storage.direct`). The finished file is checked whole, fsynced and renamed
to `out`. The whole-file hash follows the chunks as they land, so it is ready when the last
one is. All disk I/O and hashing run in threads so the event loop never blocks, and memory
stays flat: at most about holders * per_peer_inflight chunks are held at once.

Given `fetch_in_thread` (gRPC's blocking API, `rpc.GrpcFilePeers`), each stream is read in
a thread of its own, which also verifies and writes its chunks as they arrive; the event
loop only keeps the books: a hop from the event loop to a thread and back per chunk cost
more than the rest of the per-chunk work (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Container, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chordshare.storage.atomic import fsync_directory
from chordshare.storage.catalog import Manifest
from chordshare.storage.direct import DirectFile

ChunkFetcher = Callable[[str, bytes, Sequence[int]], AsyncIterator[tuple[int, bytes]]]
"""fetch(address, file_sha256, indexes) -> async iterator of (index, data) pairs, in any
order, possibly fewer than asked; raises any Exception when the peer fails."""


class ThreadStream(Protocol):
    """A chunk stream to read in a thread: (index, data) pairs as a ChunkFetcher's, raising
    any Exception when the peer fails; `cancel`, from any thread, ends it."""

    def __iter__(self) -> Iterator[tuple[int, bytes]]: ...

    def cancel(self) -> None: ...


ThreadFetcher = Callable[[str, bytes, Sequence[int]], ThreadStream]
"""fetch_in_thread(address, file_sha256, indexes), called on the event loop."""

T = TypeVar("T")

FLUSH_EVERY = 8 * 1024 * 1024  # bytes written between background flushes of the file
FIRST_BATCH = 2  # chunks asked of a holder before its rate is known
PIPELINE_SECONDS = 0.05  # how much of a holder's time one batch should fill
END_GRACE = 1.0  # seconds to wait for a stream's end once all its chunks are in
# Verified chunks that land ahead of the whole-file hash are kept in memory, up to this many
# bytes, until it reaches them. Read back from the file, they would cost the disk a second
# pass over it.
HOLD_BYTES = 16 * 1024 * 1024


class DownloadError(Exception):
    """Some chunks could not be had (the message says which and why), or the assembled file
    did not match the manifest."""


@dataclass
class DownloadReport:
    path: Path
    size: int
    sha256: bytes
    sources: dict[str, int]  # address -> verified bytes that holder served and we kept
    resumed_chunks: int  # chunks already valid in the .part file from an earlier try
    refetched_chunks: int  # chunks fetched again because a holder was slow/corrupt/dead


class _Dropped(Exception):
    """A holder broke the rules or failed; the message is the reason (for DownloadError)."""


@dataclass
class _LocalFailure:
    """A write to the local file failed in a receiving thread (fatal to the download)."""

    error: OSError


class _Threads:
    """Runs blocking calls in threads and remembers the ones still running.

    A thread cannot be cancelled: if our task is cancelled while a pwrite is under way, the
    write still happens. So the file descriptor is closed only after `drain`, or a late
    write could land in whatever file reuses the descriptor number.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def start(
        self, fn: Callable[..., T], *args: Any, executor: ThreadPoolExecutor | None = None
    ) -> asyncio.Future[T]:
        if executor is None:
            future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        else:
            future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        # shield: cancelling the caller must not cancel the future we track for `drain`.
        return await asyncio.shield(self.start(fn, *args))

    async def drain(self) -> None:
        while self._running:
            await asyncio.wait(set(self._running))


# --- blocking helpers (run in threads) ------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _open_part(part: Path, manifest: Manifest) -> tuple[DirectFile, list[int]]:
    """Open (or create) the .part file and find the chunks it already holds: one thread
    hop for both, which matters when a download is one small chunk."""
    part.parent.mkdir(parents=True, exist_ok=True)
    file = DirectFile(part)
    try:
        return file, _resume_scan(file, manifest)
    except BaseException:
        file.close()
        raise


def _make_final(file: DirectFile, part: Path, out: Path) -> None:
    """Flush and close the finished file, give it its name, make the rename durable (one
    thread hop for all of it)."""
    try:
        os.fsync(file.fd)
    finally:
        file.close()
    os.replace(part, out)
    fsync_directory(out.parent)


def _resume_scan(file: DirectFile, manifest: Manifest) -> list[int]:
    """Fix the .part file's size and return the chunks whose bytes already match.

    Reads one chunk at a time (flat memory). A larger file is truncated; a smaller one is
    extended (sparse) so every chunk has its place.
    """
    existing = os.fstat(file.fd).st_size
    if existing > manifest.size:
        os.ftruncate(file.fd, manifest.size)
        existing = manifest.size
    have = []
    for index, digest in enumerate(manifest.chunks):
        offset = index * manifest.chunk_size
        length = manifest.chunk_length(index)
        if offset + length > existing:
            break  # chunks past the end were never written
        found = hashlib.sha256()
        if file.feed(found, length, offset) == length and found.digest() == digest:
            have.append(index)
    if existing < manifest.size:
        os.ftruncate(file.fd, manifest.size)
    return have


def _verify_and_write(file: DirectFile, data: bytes, digest: bytes, offset: int) -> bool:
    """Write data at offset if it hashes to digest (one thread hop for both)."""
    if _sha256(data) != digest:
        return False
    file.write(data, offset)
    return True


def _hash_all(whole: Any, pieces: Sequence[bytes]) -> None:
    for data in pieces:
        whole.update(data)


def _hash_chunks(whole: Any, file: DirectFile, manifest: Manifest, start: int, end: int) -> None:
    """Feed chunks start..end-1, read back from the .part file, to the whole-file hash."""
    for index in range(start, end):
        file.feed(whole, manifest.chunk_length(index), index * manifest.chunk_size)


async def _hash_in_order(swarm: _Swarm) -> bytes:
    """The whole file's SHA-256, computed while the download goes on, in a thread, so the
    end of a download does not wait for a second pass over the file: each run of chunks
    from the front is taken from memory when the swarm kept them (`HOLD_BYTES`), else read
    back from the file (chunks resumed from it, or that landed too far ahead)."""
    manifest = swarm.manifest
    if len(manifest.chunks) == 1 and manifest.sha256 == manifest.chunks[0]:
        # One chunk: the file's hash is the chunk's, checked as it landed.
        while 0 not in swarm.on_disk:
            swarm.wrote.clear()
            await swarm.wrote.wait()
        return manifest.sha256
    whole = hashlib.sha256()
    start, count = 0, len(manifest.chunks)
    while start < count:
        held = swarm.take_held(start)
        if held:
            await swarm.threads.run(_hash_all, whole, held)
            start = swarm.hashed_to = start + len(held)
            continue
        end = start
        while end < count and end in swarm.on_disk and end not in swarm.held:
            end += 1
        if end == start:
            swarm.wrote.clear()
            await swarm.wrote.wait()
            continue
        await swarm.threads.run(_hash_chunks, whole, swarm.file, manifest, start, end)
        start = swarm.hashed_to = end
    return whole.digest()


# --- the download ---------------------------------------------------------------------


def _ranges(indexes: Sequence[int], limit: int = 8) -> str:
    """'0-3, 7, 9-12' for sorted indexes, cut short after `limit` ranges."""
    runs: list[str] = []
    start = prev = None
    for i in [*indexes, None]:
        if start is not None and (i is None or i != prev + 1):
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    more = f", ... ({len(runs) - limit} more ranges)" if len(runs) > limit else ""
    return ", ".join(runs[:limit]) + more


@dataclass
class _Swarm:
    """The shared state of one download. Touched only from the event loop (no locks)."""

    manifest: Manifest
    fetch: ChunkFetcher
    file: DirectFile
    threads: _Threads
    per_peer_inflight: int
    chunk_timeout: float
    progress: Callable[[int], None] | None
    needed: int
    # Invariant: an index is in `pending` iff it is not claimed and no holder has it out.
    pending: deque[int] = field(default_factory=deque)
    outstanding: dict[int, set[str]] = field(default_factory=dict)  # index -> holders
    claimed: set[int] = field(default_factory=set)  # a verified copy won (maybe being written)
    retried: set[int] = field(default_factory=set)  # was out at a dropped holder
    written: int = 0
    refetched: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)  # holder -> why it stopped helping
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    landed: asyncio.Event = field(default_factory=asyncio.Event)  # a chunk was written
    out_since: dict[int, float] = field(default_factory=dict)  # index -> first asked for
    dropped: set[str] = field(default_factory=set)
    on_disk: set[int] = field(default_factory=set)  # verified and written (or resumed)
    wrote: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the whole-file hash
    endgame_after: float = 0.5  # seconds a chunk is out before idle holders help with it
    fetch_in_thread: ThreadFetcher | None = None  # when set, streams are read in threads
    receivers: ThreadPoolExecutor | None = None  # ...these: one per lane, none waits
    rates: dict[str, tuple[float, int]] = field(default_factory=dict)  # first ask, bytes
    unflushed: int = 0  # bytes written since the last background flush started
    flushing: bool = False
    hashed_to: int = 0  # the whole-file hash has every chunk before this index
    held: dict[int, bytes] = field(default_factory=dict)  # landed ahead of it, in memory
    held_bytes: int = 0

    def hold(self, index: int, data: bytes) -> None:
        """Keep a verified chunk for the whole-file hash, if it will want it and there is
        room; otherwise the hash reads it back from the file."""
        if index >= self.hashed_to and self.held_bytes + len(data) <= HOLD_BYTES:
            self.held[index] = data
            self.held_bytes += len(data)

    def take_held(self, start: int) -> list[bytes]:
        """The run of held chunks from start on, no longer held."""
        run = []
        while start + len(run) in self.held:
            data = self.held.pop(start + len(run))
            self.held_bytes -= len(data)
            run.append(data)
        return run

    def take(self, holder: str, lacks: set[int], size: int) -> dict[int, bool]:
        """The next batch for holder: index -> whether asking is a re-fetch."""
        batch: dict[int, bool] = {}
        skipped = []
        while self.pending and len(batch) < size:
            index = self.pending.popleft()
            if index in lacks:
                skipped.append(index)
            else:
                batch[index] = index in self.retried
        self.pending.extendleft(reversed(skipped))
        if not batch:
            # Endgame: help with chunks out at other holders for a while (not ones just
            # asked for, or every small file would be fetched from every holder at once),
            # least-duplicated first.
            now = time.monotonic()
            spare = [
                i
                for i, at in self.outstanding.items()
                if holder not in at
                and i not in lacks
                and now - self.out_since.get(i, now) >= self.endgame_after
            ]
            spare.sort(key=lambda i: len(self.outstanding[i]))
            batch = dict.fromkeys(spare[:size], True)
        for index in batch:
            self.outstanding.setdefault(index, set()).add(holder)
            self.out_since.setdefault(index, time.monotonic())
        return batch

    def batch_for(self, holder: str, most: int) -> int:
        """How many chunks to ask a holder for at once: enough to keep it busy for about
        PIPELINE_SECONDS at the rate it has delivered so far (at most `most`). A fast
        holder (loopback) gets full batches; one behind a slow link gets small ones, so
        chunks are not claimed by it long before it can send them while faster holders
        run dry (what BitTorrent calls request pipelining)."""
        started, got = self.rates.get(holder, (time.monotonic(), 0))
        self.rates.setdefault(holder, (started, got))
        if got == 0:
            return min(most, FIRST_BATCH)
        per_second = got / max(time.monotonic() - started, 1e-3)
        wanted = int(per_second * PIPELINE_SECONDS / self.manifest.chunk_size) + 1
        return max(1, min(most, wanted))

    def helpable(self, holder: str, lacks: set[int]) -> bool:
        """Whether holder may yet help: chunks are out at others it could fetch later."""
        return any(holder not in at and i not in lacks for i, at in self.outstanding.items())

    def release(self, holder: str, indexes: Sequence[int], *, front: bool) -> None:
        """holder no longer has these out; requeue the ones nobody else is fetching."""
        for index in indexes:
            at = self.outstanding.get(index)
            if at is None:
                continue  # already claimed
            at.discard(holder)
            if not at:
                del self.outstanding[index]
                self.out_since.pop(index, None)
                if front:
                    self.pending.appendleft(index)
                else:
                    self.pending.append(index)

    async def run_holder(self, holder: str, batch_size: int) -> None:
        lacks: set[int] = set()  # chunks this holder answered a batch without
        while not self.complete.is_set() and holder not in self.dropped:
            batch = self.take(holder, lacks, self.batch_for(holder, batch_size))
            if not batch:
                if self.helpable(holder, lacks):
                    # Wait for a chunk to land or for one out elsewhere to become slow.
                    self.landed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.endgame_after / 2):
                            await self.landed.wait()
                    continue
                self.why.setdefault(holder, "did not have them")
                return
            asked = list(batch)
            try:
                got = await self._pull(holder, batch)
            except _Dropped as dropped:
                self.dropped.add(holder)
                self.why[holder] = f"dropped: {dropped}"
                self.retried.update(i for i in batch if i not in self.claimed)
                self.release(holder, list(batch), front=True)
                return
            if not got:
                # An answer with none of the chunks: assume it lacks them. (One with some is
                # taken as the peer limiting its answer, so the rest may be asked again.)
                lacks.update(asked)
            self.release(holder, list(batch), front=False)

    async def _pull(self, holder: str, batch: dict[int, bool]) -> int:
        """Fetch batch from holder, keeping verified chunks; returns how many arrived.
        Delivered indexes are removed from batch; what is left was not delivered."""
        if self.fetch_in_thread is not None:
            return await self._pull_in_thread(holder, batch)
        got = 0
        try:
            stream = aiter(self.fetch(holder, self.manifest.sha256, list(batch)))
        except Exception as exc:
            raise _Dropped(_describe(exc)) from exc
        try:
            while True:
                # Once the batch is in, wait briefly for the stream's end rather than cut
                # it off: a gRPC call dropped mid-stream stays in a reference cycle (call,
                # its reader, the last message) that only the cycle collector frees, and
                # over a large download those megabytes add up.
                wait = self.chunk_timeout if batch else min(self.chunk_timeout, END_GRACE)
                try:
                    async with asyncio.timeout(wait) as clock:
                        item = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    if not batch:
                        break  # everything arrived; how the stream ended does not matter
                    if isinstance(exc, TimeoutError) and clock.expired():
                        raise _Dropped(f"sent nothing for {self.chunk_timeout:g}s") from exc
                    raise _Dropped(_describe(exc)) from exc
                await self._accept(holder, batch, item)
                got += 1
        finally:
            await _close(stream, self.chunk_timeout)
        return got

    def _checked(self, item: Any, wanted: Container[int]) -> tuple[int, bytes]:
        """item as an (index, data) pair of a chunk asked for (in `wanted`) with the right
        length; _Dropped if it is not one."""
        try:
            index, data = item
        except (TypeError, ValueError):
            raise _Dropped("sent something that is not an (index, data) pair") from None
        if not isinstance(index, int) or index not in wanted:
            raise _Dropped(f"sent chunk {index!r}, which was not asked for (or sent it twice)")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _Dropped(f"sent chunk {index} as {type(data).__name__}, not bytes")
        if len(data) != self.manifest.chunk_length(index):
            raise _Dropped(
                f"sent chunk {index} with {len(data)} bytes, "
                f"not {self.manifest.chunk_length(index)}"
            )
        return index, data

    async def _accept(self, holder: str, batch: dict[int, bool], item: Any) -> None:
        index, data = self._checked(item, batch)
        refetch = batch.pop(index)
        if index in self.claimed:
            # Another holder's copy won (endgame): ours is a spare, checked but not kept.
            if await self.threads.run(_sha256, data) != self.manifest.chunks[index]:
                raise _Dropped(f"sent chunk {index}, which failed its SHA-256 check")
            self._spare(holder, index)
            return
        # Claim before the await so no other copy of this chunk is written too; a copy that
        # fails its check is not written, and the chunk goes back to the others.
        self.claimed.add(index)
        offset = index * self.manifest.chunk_size
        digest = self.manifest.chunks[index]
        if not await self.threads.run(_verify_and_write, self.file, data, digest, offset):
            self.claimed.discard(index)
            batch[index] = refetch
            raise _Dropped(f"sent chunk {index}, which failed its SHA-256 check")
        self._landed(holder, index, data, refetch)

    def _spare(self, holder: str, index: int) -> None:
        at = self.outstanding.get(index)
        if at is not None:
            at.discard(holder)

    def _landed(self, holder: str, index: int, data: bytes, refetch: bool) -> None:
        """Chunk index is verified and written: count it, hold it for the whole-file hash
        and wake whoever waits for it."""
        self.outstanding.pop(index, None)
        self.hold(index, data)
        self.on_disk.add(index)
        self.landed.set()
        self.wrote.set()
        self.sources[holder] = self.sources.get(holder, 0) + len(data)
        started, got = self.rates.get(holder, (time.monotonic(), 0))
        self.rates[holder] = (started, got + len(data))
        self.refetched += refetch
        self.written += 1
        self.unflushed += len(data)
        if self.unflushed >= FLUSH_EVERY and not self.flushing:
            # Start writing back what has landed while the rest arrives, so the fsync at
            # the end finds little left to do.
            self.unflushed, self.flushing = 0, True
            flush = self.threads.start(os.fdatasync, self.file.fd)
            flush.add_done_callback(lambda _: setattr(self, "flushing", False))
        if self.progress is not None:
            self.progress(len(data))
        if self.written == self.needed:
            self.complete.set()

    async def _pull_in_thread(self, holder: str, batch: dict[int, bool]) -> int:
        """`_pull` with the stream read in a thread of its own, which also checks and
        writes each chunk as it arrives: no hop to the event loop and back to a thread per
        chunk. The event loop keeps the books (`_landed`) and the clock. A copy written
        after another holder's copy of the same chunk (endgame) writes the same verified
        bytes again, which changes nothing."""
        assert self.fetch_in_thread is not None and self.receivers is not None
        loop = asyncio.get_running_loop()
        arrivals: asyncio.Queue[tuple[int, bytes] | BaseException | None] = asyncio.Queue()
        try:
            stream = self.fetch_in_thread(holder, self.manifest.sha256, list(batch))
        except Exception as exc:
            raise _Dropped(_describe(exc)) from exc
        wanted = set(batch)  # the thread's own copy: `batch` belongs to the event loop
        chunk_size, digests = self.manifest.chunk_size, self.manifest.chunks

        def post(item: tuple[int, bytes] | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(arrivals.put_nowait, item)

        def receive() -> None:
            try:
                for item in stream:
                    index, data = self._checked(item, wanted)
                    wanted.discard(index)
                    offset = index * chunk_size
                    try:
                        good = _verify_and_write(self.file, data, digests[index], offset)
                    except OSError as err:
                        post(_LocalFailure(err))
                        return
                    if not good:
                        raise _Dropped(f"sent chunk {index}, which failed its SHA-256 check")
                    post((index, data))
            except BaseException as exc:
                post(exc)
            else:
                post(None)

        self.threads.start(receive, executor=self.receivers)
        got = 0
        try:
            while True:
                # Once the batch is in, the stream's end is waited for briefly (what comes
                # after it is checked too), then the stream is cut off.
                wait = self.chunk_timeout if batch else min(self.chunk_timeout, END_GRACE)
                try:
                    async with asyncio.timeout(wait):
                        item = await arrivals.get()
                except TimeoutError:
                    if not batch:
                        return got
                    raise _Dropped(f"sent nothing for {self.chunk_timeout:g}s") from None
                if item is None:
                    return got
                if isinstance(item, _LocalFailure):
                    raise item.error  # the local disk failed: fatal, as in `_accept`
                if isinstance(item, _Dropped):
                    raise item
                if isinstance(item, BaseException):
                    if not batch:
                        return got  # everything arrived; how the stream ended does not matter
                    raise _Dropped(_describe(item)) from item
                index, data = item
                refetch = batch.pop(index)
                if index in self.claimed:
                    self._spare(holder, index)  # another holder's copy won (endgame)
                else:
                    self.claimed.add(index)
                    self._landed(holder, index, data, refetch)
                got += 1
        finally:
            stream.cancel()

    def failure(self, missing: int) -> DownloadError:
        left = sorted(set(range(len(self.manifest.chunks))) - self.claimed)
        reasons = "; ".join(f"{h} {why}" for h, why in self.why.items()) or "no holders given"
        return DownloadError(
            f"could not get {missing} of {len(self.manifest.chunks)} chunks of "
            f"{self.manifest.name!r} (chunks {_ranges(left)}): {reasons}"
        )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line, whatever the peer said
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _close(stream: AsyncIterator[Any], grace: float) -> None:
    """Stop a fetch we no longer want (tell the peer), without waiting long for it."""
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(grace):
            await aclose()


async def download(
    manifest: Manifest,
    holders: Sequence[str],
    fetch: ChunkFetcher,
    out: Path,
    *,
    per_peer_inflight: int = 16,
    chunk_timeout: float = 10.0,
    progress: Callable[[int], None] | None = None,
    fetch_in_thread: ThreadFetcher | None = None,
) -> DownloadReport:
    """Fetch the file `manifest` describes from `holders` into `out` (see module docstring).

    Raises DownloadError when chunks remain that no holder would give (the .part file is
    kept, so a later call resumes) or when the assembled file's SHA-256 is wrong (the .part
    file is deleted); OSError, naming the file, when the local disk fails (full, say: the
    .part file is kept). `progress(n)` gets each batch of newly verified bytes as it lands.
    With `fetch_in_thread`, chunks are fetched with it instead of `fetch`, each stream read
    in a thread of its own that also verifies and writes its chunks.
    """
    manifest.check()
    if per_peer_inflight < 1:
        raise ValueError("per_peer_inflight must be at least 1")
    out = Path(out)
    part = out.with_name(out.name + ".part")
    holders = list(dict.fromkeys(holders))  # the same holder twice would double its share
    threads = _Threads()

    opening = threads.start(_open_part, part, manifest)
    try:
        file, have = await asyncio.shield(opening)
    except asyncio.CancelledError:
        await threads.drain()
        if not opening.cancelled() and opening.exception() is None:
            opening.result()[0].close()
        raise
    open_file: DirectFile | None = file  # None once closed

    workers: list[asyncio.Task[None]] = []
    # One receiving thread per lane, so none waits for a free thread with its clock running.
    receivers = (
        ThreadPoolExecutor(max_workers=2 * max(1, len(holders)), thread_name_prefix="receive")
        if fetch_in_thread is not None
        else None
    )
    try:
        have_set = set(have)
        todo = [i for i in range(len(manifest.chunks)) if i not in have_set]
        swarm = _Swarm(
            manifest=manifest,
            fetch=fetch,
            file=file,
            threads=threads,
            per_peer_inflight=per_peer_inflight,
            chunk_timeout=chunk_timeout,
            progress=progress,
            needed=len(todo),
            pending=deque(todo),
            claimed=have_set,
            on_disk=set(have_set),
            sources=dict.fromkeys(holders, 0),
            fetch_in_thread=fetch_in_thread,
            receivers=receivers,
        )
        hashing = asyncio.create_task(_hash_in_order(swarm))
        workers.append(hashing)
        if todo:
            # Two lanes per holder, each with half the holder's chunks in flight: one
            # asks for its next batch while the other's is still streaming in.
            sizes = [per_peer_inflight - per_peer_inflight // 2, per_peer_inflight // 2]
            workers += [
                asyncio.create_task(swarm.run_holder(h, size))
                for h in holders
                for size in sizes
                if size > 0
            ]
            finished = asyncio.create_task(swarm.complete.wait())
            try:
                running: set[asyncio.Task[Any]] = set(workers) - {hashing}
                while running and not finished.done():
                    done, _ = await asyncio.wait(
                        running | {finished}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done - {finished}:
                        running.discard(task)
                        task.result()  # a local failure (disk, progress callback) is fatal
            finally:
                finished.cancel()
            if swarm.written < swarm.needed:
                raise swarm.failure(swarm.needed - swarm.written)

        # Every chunk was verified, but check the whole: it guards against a manifest whose
        # chunk hashes and file hash disagree, and against the disk.
        digest = await hashing
        if digest != manifest.sha256:
            await _cleanup(workers, threads, file)
            open_file = None
            await threads.run(part.unlink, True)
            raise DownloadError(
                f"{manifest.name!r}: the assembled file's SHA-256 is {digest.hex()}, "
                f"the manifest says {manifest.sha256.hex()}; the partial file was deleted"
            )
        await _stop(workers, threads)
        open_file = None
        await threads.run(_make_final, file, part, out)
    except OSError as err:
        if err.filename is not None:
            raise
        # A failed pwrite or fsync names no file: say which, and that nothing is lost.
        kept = f"{err.strerror}; the chunks written so far are kept, get again to resume"
        raise OSError(err.errno, kept, str(part)) from err
    finally:
        if open_file is not None:
            await _cleanup(workers, threads, open_file)
        if receivers is not None:
            receivers.shutdown(wait=False)  # its threads are done: drained above

    return DownloadReport(
        path=out,
        size=manifest.size,
        sha256=manifest.sha256,
        sources=swarm.sources,
        resumed_chunks=len(have),
        refetched_chunks=swarm.refetched,
    )


async def _stop(workers: Sequence[asyncio.Task[None]], threads: _Threads) -> None:
    """Stop the workers (slow endgame losers among them) and wait for their threads."""
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await threads.drain()


async def _cleanup(
    workers: Sequence[asyncio.Task[None]], threads: _Threads, file: DirectFile
) -> None:
    """Stop the workers, then close the file (no thread may still be writing to it)."""
    await _stop(workers, threads)
    await threads.run(file.close)
