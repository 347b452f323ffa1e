"""A put's work on the node's disk, done in threads: reserving room, storing and checking
chunks, committing the file once every chunk is there and they add up to its hash, and
keeping what a put cut off stored, for its rerun (`files.unfinished`)."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from dataclasses import replace

from chordshare.files.lineage import Ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, PutCutOff, Refusal
from chordshare.files.unfinished import Held, UnfinishedPut, held_after, kept_after, to_sweep
from chordshare.sharing.put_work import PutUnderWay, WholeHash
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import NodeStore, QuotaExceeded, Reservation

log = logging.getLogger(__name__)


class PutStore:
    def __init__(self, store: NodeStore, address: str) -> None:
        self.store = store
        self.address = address

    def reserve(self, manifest: Manifest, streamed: bool) -> Reservation:
        """Reserve the bytes of the chunks of manifest not stored here yet (all of a put
        whose hashes come last)."""
        try:
            if streamed:
                # Every chunk comes, from the start: what a put of the name that ended
                # unfinished kept is not needed (nor counted) any more.
                self.store.drop_unfinished([manifest.name])
                return self.store.reserve(manifest.size)
            lacking: dict[bytes, int] = {}
            for index, digest in enumerate(manifest.chunks):
                if digest not in lacking and not self.store.has_chunk(digest):
                    lacking[digest] = manifest.chunk_length(index)
            return self.store.reserve(sum(lacking.values()))
        except QuotaExceeded as err:
            raise FileError(Refusal.RESOURCE_EXHAUSTED, str(err)) from None

    async def store_chunk(
        self, index: int, data: bytes, expected: bytes | None, reservation: Reservation
    ) -> bytes:
        return await asyncio.to_thread(self.put_chunk, index, data, expected, reservation)

    def put_chunk(
        self, index: int, data: bytes, expected: bytes | None, reservation: Reservation
    ) -> bytes:
        """Store chunk `index` (checked against `expected` when the manifest came first),
        its failures as the refusals the client hears. Returns its hash."""
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

    async def flush(self, stores: Sequence[asyncio.Task[bytes]]) -> None:
        digests = [await store for store in stores]
        await asyncio.to_thread(self.store.chunks.sync, digests)

    def small_chunks(
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

    def finish(
        self, manifest: Manifest, whole: WholeHash, ancestry: Ancestry | None = None
    ) -> Manifest:
        """Check that every chunk is here and that they add up to the file (the whole-file
        hash filled in when the client left it out), then list it. Returns it as listed."""
        missing = [i for i, d in enumerate(manifest.chunks) if not self.store.has_chunk(d)]
        if missing:
            raise PutCutOff(
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
        digest = whole.hasher.digest()
        if manifest.sha256 and digest != manifest.sha256:
            raise FileError(
                Refusal.DATA_LOSS, f"the chunks of {manifest.name!r} do not add up to its SHA-256"
            )
        final = replace(manifest, sha256=digest)
        self.store.commit(final, ancestry)
        return final

    def end_unfinished(
        self, put: PutUnderWay, error: BaseException, ttl: float, now: float
    ) -> None:
        """After a put that ended before its commit: keep what it stored on disk as the
        name's unfinished put when `kept_after` says so, else drop all it stored."""
        header, stored = put.header, put.stored_chunks()
        digests = list(stored.values()) + put.stored
        held: Held = ()
        if kept_after(error, header.replica, ttl):
            manifest = None if header.manifest_last else header.manifest
            held = held_after(stored, manifest, self.store.chunks.has)
        if not held:
            self.store.discard(digests)
            if digests:
                log.info(
                    "dropped the %d chunks of the put of %r: %s",
                    len(digests),
                    header.manifest.name,
                    str(error) or type(error).__name__,
                )
            return
        promise = header.manifest
        record = UnfinishedPut(promise.name, promise.size, promise.chunk_size, held, now)
        self.store.keep_unfinished(record, digests)
        log.info(
            "kept %d of %d bytes of the unfinished put of %r for %g s",
            record.held_bytes,
            record.size,
            record.name,
            ttl,
        )

    def sweep(self, now: float, ttl: float, busy: set[str]) -> list[UnfinishedPut]:
        """Drop the unfinished puts past their time (not those of `busy` names)."""
        records = self.store.unfinished_puts()
        names = set(to_sweep(records, now, ttl, busy))
        self.store.drop_unfinished(names)
        return [record for record in records if record.name in names]
