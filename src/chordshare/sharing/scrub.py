"""Finding chunks that went bad on this node's disk, and healing them from other holders.

A node checks a chunk against its hash when a put needs it, and a get's client checks every
chunk it receives (and stops asking a holder that sent a bad one), but nothing looked at
the copies at rest: a chunk file that rotted stayed, and the network had one good copy of
it fewer for as long as the node lived. Repair does not notice either: it compares
versions, and the node still holds the version.

The scrubber goes over every file stored here, chunk by chunk, and reads each chunk file
again (in a thread, paced to `rate` bytes per second so that puts and gets keep most of the
disk). What it reads, and what it fetches to heal, is also under the node's repair cap,
shared fairly with repair pushes: together they never take more than that cap, and neither
starves the other. A chunk that no longer matches its hash, or has gone missing, is fetched
from another holder of the file (the key's holders, and peers sharing the same bytes in
place), checked, and written back in place atomically. If no holder can give it, a damaged copy is
dropped, as a put that meets one drops it: the next put of those bytes then sends the chunk
again, and the next pass here tries again. Chunks of 64 KiB or less live in the catalog
(SQLite) and are not scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chordshare.files.manifest import Manifest
from chordshare.node import shortage
from chordshare.node.tasks import NodeTasks
from chordshare.sharing.throttle import Throttle
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import NodeStore
from chordshare.transport.files import ChunkFetcher

log = logging.getLogger(__name__)

DEFAULT_RATE = 4_000_000  # bytes per second: a 100 GB node is gone over in seven hours
PASS_EVERY = 600.0  # seconds from the start of one pass to the next, at the least
FIRST_PASS_AFTER = 60.0  # seconds after start-up: let the node join and catch up first
FETCH_TIMEOUT = 30.0  # seconds to wait for one chunk from one holder

T = TypeVar("T")

HolderFinder = Callable[[Manifest], Awaitable[Sequence[str]]]
"""holders(manifest) -> addresses of the other nodes that may serve the file's chunks."""


@dataclass
class ScrubCounts:
    """What the scrubber has done since the node started."""

    passes: int = 0
    checked_chunks: int = 0
    checked_bytes: int = 0
    bad: int = 0  # chunks found damaged or missing
    healed: int = 0  # of those, fetched again from another holder
    unhealed: int = 0  # of those, no holder could give (damaged ones are dropped)

    def add(self, other: ScrubCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Scrubber:
    def __init__(
        self,
        store: NodeStore,
        holders: HolderFinder,
        fetch: ChunkFetcher,
        tasks: NodeTasks,
        rate: float = DEFAULT_RATE,
        first_pass_after: float = FIRST_PASS_AFTER,
        repair: Throttle | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("the scrub rate must be positive")
        self.store = store
        self.holders = holders
        self.fetch = fetch
        self.tasks = tasks
        self.rate = rate
        self.first_pass_after = first_pass_after
        self.repair = repair if repair is not None else Throttle()  # the node's repair cap
        self.counts = ScrubCounts()
        self._task: asyncio.Task[None] | None = None
        self._threads: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        self._task = self.tasks.start(self.run(), "scrub")

    async def close(self) -> None:
        """Stop scrubbing, and wait for the thread call under way (it may be using the
        store, which the node closes next)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._threads:
            await asyncio.wait(set(self._threads))

    async def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._threads.add(future)
        future.add_done_callback(self._threads.discard)
        return await asyncio.shield(future)

    async def run(self) -> None:
        """Scrub forever: a pass, then the rest of PASS_EVERY, then the next pass."""
        await asyncio.sleep(self.first_pass_after)
        while True:
            started = time.monotonic()
            try:
                await self.scrub_pass()
            except Exception as err:  # a failed pass must not stop the next one
                # Out of open files: said once while it lasts; the next pass tries again.
                if not shortage.waits(err, "scrub"):
                    log.exception("scrub pass failed")
            else:
                shortage.goes_on("scrub")
            await asyncio.sleep(max(0.0, PASS_EVERY - (time.monotonic() - started)))

    async def scrub_pass(self) -> ScrubCounts:
        """One pass over every chunk file the files stored here use; returns what this
        pass found (the totals are in `counts`)."""
        found = ScrubCounts(passes=1)
        flow = object()  # this pass, as one flow under the repair cap
        try:
            await self._pass(found, _Pacer(self.rate), flow)
        finally:
            self.repair.forget(flow)
        self.counts.add(found)
        if found.bad:
            log.warning(
                "scrub: %d of %d chunks were damaged or missing; %d healed, %d not",
                found.bad,
                found.checked_chunks,
                found.healed,
                found.unhealed,
            )
        return found

    async def _pass(self, found: ScrubCounts, paced: _Pacer, flow: object) -> None:
        seen: set[bytes] = set()
        for manifest in await self._in_thread(self.store.manifests):
            for index, digest in enumerate(manifest.chunks):
                if digest in seen:
                    continue
                seen.add(digest)
                length = manifest.chunk_length(index)
                state = await self._in_thread(self._check, digest)
                if state == "elsewhere":
                    continue
                found.checked_chunks += 1
                found.checked_bytes += length
                if state != "good" and self._still_used(manifest.name, digest):
                    found.bad += 1
                    if await self._heal(manifest, index):
                        found.healed += 1
                    else:
                        found.unhealed += 1
                        if state == "damaged":
                            await self._in_thread(self.store.drop_chunk, digest)
                await paced.after(length)
                await self.repair.take(flow, length)

    def _check(self, digest: bytes) -> str:
        """'good', 'damaged' or 'missing' for a chunk file; 'elsewhere' for a chunk the
        catalog keeps."""
        if self.store.catalog.has_small_chunk(digest):
            return "elsewhere"
        try:
            self.store.chunks.get(digest, verify=True)
        except ChunkError:
            return "damaged" if self.store.chunks.size_of(digest) else "missing"
        return "good"

    def _still_used(self, name: str, digest: bytes) -> bool:
        """Whether the file named still uses the chunk (it may have been removed or
        replaced since the pass listed it)."""
        current = self.store.manifest(name)
        return current is not None and digest in current.chunks

    async def _heal(self, manifest: Manifest, index: int) -> bool:
        """Fetch chunk `index` of manifest from another holder and store it in place."""
        digest = manifest.chunks[index]
        try:
            holders = list(await self.holders(manifest))
        except Exception as err:
            log.warning("scrub: could not find the holders of %r: %s", manifest.name, err)
            return False
        for holder in holders:
            try:
                data = await self._fetch_one(holder, manifest, index)
            except Exception as err:
                log.info(
                    "scrub: %s could not give chunk %d of %r: %s", holder, index, manifest.name, err
                )
                continue
            if data is None:
                continue
            try:  # checked against its hash before it replaces anything (in the thread)
                await self._in_thread(self.store.chunks.put, data, digest, rewrite=True)
            except ChunkError as err:
                log.warning(
                    "scrub: %s sent a bad chunk %d of %r: %s", holder, index, manifest.name, err
                )
                continue
            log.info("scrub: chunk %d of %r healed from %s", index, manifest.name, holder)
            return True
        log.error(
            "scrub: chunk %d of %r is damaged or missing here and no other holder (%s) "
            "could give it",
            index,
            manifest.name,
            ", ".join(holders) or "none known",
        )
        return False

    async def _fetch_one(self, holder: str, manifest: Manifest, index: int) -> bytes | None:
        stream = self.fetch(holder, manifest.sha256, [index])
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                async for got, data in stream:
                    if got == index:
                        return bytes(data)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return None


class _Pacer:
    """Sleeps so that the bytes checked so far take at least bytes / rate seconds."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.done = 0

    async def after(self, nbytes: int) -> None:
        self.done += nbytes
        ahead = self.done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)
