"""Downloading a file's chunks from every holder at once, verified and resumable.

The decisions (which chunks to ask which holder for, end game, retries, who is dropped)
are `core.schedule.Schedule`'s; this module carries them out. Each holder gets two lanes
that ask for batches in turn, so one lane's request goes out while the other's chunks
stream in. Each chunk is hashed once, as it arrives, against the manifest, and written at
its offset into `out + ".part"` if it matches (`part_file`, which a later call resumes
from). When every chunk has landed the file is fsynced and renamed to `out`: the chunk
hashes are the whole file's check. Hashing and disk I/O run in threads, so the event loop
never blocks, and memory stays flat: about holders * per_peer_inflight chunks at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chordshare.files.manifest import Manifest
from chordshare.files.schedule import Schedule
from chordshare.sharing.part_file import PartFile
from chordshare.transport.files import ChunkFetcher

T = TypeVar("T")
Bytes = bytes | bytearray | memoryview

FLUSH_EVERY = 8 * 1024 * 1024  # bytes landed between background flushes of the file
END_GRACE = 1.0  # seconds to wait for a stream's end once all its chunks are in
LANES = 2  # requests out at each holder at once


class DownloadError(Exception):
    """Some chunks could not be had; the message says which and why."""


@dataclass
class DownloadReport:
    path: Path
    size: int
    sha256: bytes
    sources: dict[str, int]  # address -> verified bytes that holder served and we kept
    resumed_chunks: int  # chunks already valid in the .part file from an earlier try
    refetched_chunks: int  # chunks fetched again because a holder was slow/corrupt/dead


class _Failed(Exception):
    """A holder's answer failed or broke the rules; the message is the reason."""

    def __init__(self, reason: str, corrupt: int | None = None) -> None:
        super().__init__(reason)
        self.corrupt = () if corrupt is None else (corrupt,)


class _Threads:
    """Runs blocking calls in threads and remembers the ones still running.

    A thread cannot be cancelled: if our task is cancelled while a pwrite is under way, the
    write still happens. So the file is closed only after `drain`, or a late write could
    land in whatever file reuses the descriptor number.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def start(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        # shield: cancelling the caller must not cancel the future `drain` waits for.
        return await asyncio.shield(self.start(fn, *args))

    async def drain(self) -> None:
        while self._running:
            await asyncio.wait(set(self._running))


def _ranges(indexes: Sequence[int], limit: int = 8) -> str:
    """'0-3, 7, 9-12' for sorted indexes, cut short after `limit` ranges."""
    runs: list[list[int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    more = f", ... ({len(runs) - limit} more ranges)" if len(runs) > limit else ""
    return ", ".join(text) + more


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line, whatever the peer said
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ChunkSink(Protocol):
    """Where a download's chunks go: a `PartFile`, or anything that takes each chunk once
    its hash is checked (from several threads at once) and needs no file."""

    def write_checked(self, index: int, data: Bytes) -> bool: ...

    def flush(self) -> None: ...

    def finish(self, out: Path) -> None: ...

    def close(self) -> None: ...


class InMemory:
    """A ChunkSink that keeps a small file whole in memory (a folder's manifest, read at
    once): `data` once the download is done."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.data = bytearray(manifest.size)

    def write_checked(self, index: int, data: Bytes) -> bool:
        if hashlib.sha256(data).digest() != self.manifest.chunks[index]:
            return False
        start = index * self.manifest.chunk_size
        self.data[start : start + len(data)] = data  # its own place: threads never overlap
        return True

    def flush(self) -> None:
        pass

    def finish(self, out: Path) -> None:
        pass

    def close(self) -> None:
        pass


class _Run:
    """One download at work: its schedule, its .part file and its lanes. Touched only
    from the event loop, except `_write` (in threads)."""

    def __init__(
        self,
        manifest: Manifest,
        schedule: Schedule,
        part: ChunkSink,
        fetch: ChunkFetcher,
        chunk_timeout: float,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.manifest = manifest
        self.schedule = schedule
        self.part = part
        self.fetch = fetch
        self.chunk_timeout = chunk_timeout
        self.progress = progress
        self.threads = _Threads()
        self.changed = asyncio.Event()  # replaced each time it is set: no wake-up is lost
        self.complete = asyncio.Event()
        self.unflushed = 0  # bytes landed since the last background flush started
        self.flushing = False

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def lane(self, holder: str) -> None:
        """Ask holder for what the schedule says until it has nothing more for it."""
        schedule = self.schedule
        while not schedule.done:
            batch = schedule.next_batch(holder, time.monotonic())
            if not batch:
                if not schedule.can_help(holder):
                    return
                # Wait for the schedule to change, or for a chunk out elsewhere to become
                # slow enough for the end game.
                changed = self.changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(schedule.endgame_after / 2):
                        await changed.wait()
                continue
            waiting = set(batch)  # what this answer still owes
            try:
                await self._pull(holder, batch, waiting)
            except _Failed as failure:
                schedule.failed(holder, sorted(waiting), str(failure), corrupt=failure.corrupt)
            else:
                schedule.ended(holder, sorted(waiting), delivered=len(batch) - len(waiting))
            self._notify()

    def _landed(self, holder: str, index: int, nbytes: int) -> None:
        if not self.schedule.landed(holder, index, nbytes, time.monotonic()):
            return  # another holder's copy won (end game)
        self.unflushed += nbytes
        if self.unflushed >= FLUSH_EVERY and not self.flushing:
            # Start writing back what has landed while the rest arrives, so the fsync at
            # the end finds little left to do.
            self.unflushed, self.flushing = 0, True
            flush = self.threads.start(self.part.flush)
            flush.add_done_callback(lambda _: setattr(self, "flushing", False))
        if self.progress is not None:
            self.progress(nbytes)
        self._notify()
        if self.schedule.done:
            self.complete.set()

    def _checked(self, item: Any, wanted: Container[int]) -> tuple[int, Bytes]:
        """item as an (index, data) pair of a chunk asked for (in `wanted`) with the right
        length; _Failed if it is not one."""
        try:
            index, data = item
        except (TypeError, ValueError):
            raise _Failed("sent something that is not an (index, data) pair") from None
        if not isinstance(index, int) or index not in wanted:
            raise _Failed(f"sent chunk {index!r}, which was not asked for (or sent it twice)")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _Failed(f"sent chunk {index} as {type(data).__name__}, not bytes")
        if len(data) != self.manifest.chunk_length(index):
            raise _Failed(
                f"sent chunk {index} with {len(data)} bytes, "
                f"not {self.manifest.chunk_length(index)}"
            )
        return index, data

    def _write(self, index: int, data: Bytes) -> None:
        """Verify and write one received chunk (in a thread); _Failed if it is wrong."""
        if not self.part.write_checked(index, data):
            raise _Failed(f"sent chunk {index}, which failed its SHA-256 check", index)

    async def _pull(self, holder: str, batch: list[int], waiting: set[int]) -> None:
        """Fetch batch from holder on the event loop, each chunk verified and written in a
        thread; what arrives leaves `waiting`."""
        try:
            stream = aiter(self.fetch(holder, self.manifest.sha256, batch))
        except Exception as exc:
            raise _Failed(_describe(exc)) from exc
        wanted = set(batch)
        try:
            while True:
                # Once the batch is in, wait briefly for the stream's end rather than cut
                # it off: a gRPC call dropped mid-stream stays in a reference cycle (call,
                # its reader, the last message) that only the cycle collector frees, and
                # over a large download those megabytes add up.
                wait = self.chunk_timeout if waiting else min(self.chunk_timeout, END_GRACE)
                try:
                    async with asyncio.timeout(wait) as clock:
                        item = await anext(stream)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    if not waiting:
                        return  # everything arrived; how the stream ended does not matter
                    if isinstance(exc, TimeoutError) and clock.expired():
                        raise _Failed(f"sent nothing for {self.chunk_timeout:g}s") from exc
                    raise _Failed(_describe(exc)) from exc
                index, data = self._checked(item, wanted)
                wanted.discard(index)
                if index not in self.schedule.landed_chunks:  # else a spare copy (end game)
                    await self.threads.run(self._write, index, data)
                waiting.discard(index)
                self._landed(holder, index, len(data))
        finally:
            await _close(stream, self.chunk_timeout)

    def failure(self) -> DownloadError:
        missing = self.schedule.missing
        why = self.schedule.why
        reasons = "; ".join(f"{h} {why[h]}" for h in self.schedule.holders if h in why)
        return DownloadError(
            f"could not get {len(missing)} of {len(self.manifest.chunks)} chunks of "
            f"{self.manifest.name!r} (chunks {_ranges(missing)}): "
            f"{reasons or 'no holders given'}"
        )


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
    sink: ChunkSink | None = None,
) -> DownloadReport:
    """Fetch the file `manifest` describes from `holders` into `out` (see module docstring).
    With a `sink`, every chunk goes to it instead, in whatever order they come, and no
    file is written: `out` only names what was fetched.

    Raises DownloadError when chunks remain that no holder would give (the .part file is
    kept, so a later call resumes); OSError, naming the file, when the local disk fails
    (full, say: the .part file is kept). `progress(n)` gets each batch of newly verified
    bytes as it lands."""
    manifest.check()
    if per_peer_inflight < 1:
        raise ValueError("per_peer_inflight must be at least 1")
    out = Path(out)
    part_path = out.with_name(out.name + ".part")
    holders = list(dict.fromkeys(holders))  # the same holder twice would double its share
    part, have = (sink, []) if sink is not None else await _open_part(part_path, manifest)
    # Each lane asks for up to its share of the holder's chunks in flight.
    lanes = min(LANES, per_peer_inflight)
    schedule = Schedule(
        len(manifest.chunks),
        have,
        holders,
        max_batch=-(-per_peer_inflight // lanes),
        max_inflight=per_peer_inflight,
    )
    run = _Run(manifest, schedule, part, fetch, chunk_timeout, progress)
    workers = [asyncio.create_task(run.lane(h)) for h in holders for _ in range(lanes)]
    open_part: ChunkSink | None = part  # None once closed
    try:
        if not schedule.done:
            await _until_done(run, workers)
        if not schedule.done:
            raise run.failure()
        await _stop(workers, run.threads)
        open_part = None
        await run.threads.run(part.finish, out)
    except OSError as err:
        if err.filename is not None:
            raise
        # A failed pwrite or fsync names no file: say which, and that nothing is lost.
        kept = f"{err.strerror}; the chunks written so far are kept, get again to resume"
        raise OSError(err.errno, kept, str(part_path)) from err
    finally:
        if open_part is not None:
            await _stop(workers, run.threads)
            await run.threads.run(open_part.close)
    return DownloadReport(
        path=out,
        size=manifest.size,
        sha256=manifest.sha256,
        sources=schedule.sources(),
        resumed_chunks=len(have),
        refetched_chunks=schedule.refetched,
    )


async def _open_part(path: Path, manifest: Manifest) -> tuple[PartFile, list[int]]:
    """The .part file and the chunks it holds already; closed again if cancelled."""
    opener = _Threads()
    opening = opener.start(PartFile.open, path, manifest)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        await opener.drain()
        if not opening.cancelled() and opening.exception() is None:
            opening.result()[0].close()
        raise


async def _until_done(run: _Run, workers: Sequence[asyncio.Task[None]]) -> None:
    """Wait until every chunk has landed or every lane has ended; a lane's exception (a
    local failure: the disk, the progress callback) is raised."""
    finished = asyncio.create_task(run.complete.wait())
    running: set[asyncio.Task[Any]] = set(workers)
    try:
        while running and not finished.done():
            done, _ = await asyncio.wait(running | {finished}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {finished}:
                running.discard(task)
                task.result()
    finally:
        finished.cancel()


async def _stop(workers: Sequence[asyncio.Task[None]], threads: _Threads) -> None:
    """Stop the lanes (slow end-game losers among them) and wait for their threads. A lane
    whose batch is in gets END_GRACE to see its stream end: a call cut off mid-stream stays
    in a reference cycle until the cycle collector runs."""
    await asyncio.wait(workers, timeout=END_GRACE)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await threads.drain()
