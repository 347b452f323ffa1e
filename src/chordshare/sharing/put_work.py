"""One put under way on a node: what arrived and what is stored, the chunk stores in threads
(hashing releases the GIL, so two cores work at once) while the next chunks arrive, and the
whole file's hash following them in order."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from chordshare.files.lineage import Ancestry
from chordshare.files.messages import PutHeader
from chordshare.storage.store import Reservation

T = TypeVar("T")

PUT_PIPELINE = 6  # chunk stores and hash steps of one put under way at once


class WholeHash:
    """The whole file's SHA-256, fed with chunks as they arrive in order; chunks that
    arrive out of order (or were already stored) are read back at the end."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.next_index = 0

    def feed(self, index: int, data: bytes) -> None:
        if index == self.next_index:
            self.hasher.update(data)
            self.next_index += 1


class PutWork:
    """The tasks of a put under way: chunk stores, the whole-file hash following in order
    in a chain of its own, and flushes. At most PUT_PIPELINE wait at once."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._hashing: asyncio.Task[None] | None = None

    def add(self, step: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(step)
        self.tasks.add(task)
        return task

    def hash_whole(self, whole: WholeHash, index: int, data: bytes) -> None:
        """Feed chunk `index` to the whole-file hash after the chunk before it."""
        self._hashing = self.add(self._feed_after(self._hashing, whole, index, data))

    @staticmethod
    async def _feed_after(
        previous: asyncio.Task[None] | None, whole: WholeHash, index: int, data: bytes
    ) -> None:
        if previous is not None:
            await previous
        await asyncio.to_thread(whole.feed, index, data)

    async def room(self) -> None:
        """Wait until fewer than PUT_PIPELINE tasks are under way; raise what one raised."""
        while len(self.tasks) >= PUT_PIPELINE:
            done, self.tasks = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()

    async def finish(self) -> None:
        for task in asyncio.as_completed(list(self.tasks)):
            await task
        self.tasks.clear()

    async def settle(self) -> None:
        """Let every task end, failed or not (a thread cannot be stopped)."""
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PutUnderWay:
    """One put under way: what arrived, what is stored, and the whole-file hash."""

    def __init__(self, header: PutHeader, small: bool) -> None:
        self.header = header
        self.small = small  # kept in memory until judged and committed
        self.lineage: Ancestry | None = None  # what the stored version replaced
        self.whole = WholeHash()
        self.work = PutWork()
        self.received: dict[int, bytes] = {}  # a small put's chunks
        self.stores: list[asyncio.Task[bytes]] = []  # a large put's, their hashes once stored
        self.indexes: list[int] = []  # the index of each of `stores`
        self.stored: list[bytes] = []  # a small put's chunks stored so far
        self.reservation: Reservation | None = None

    def stored_chunks(self) -> dict[int, bytes]:
        """The hash of each chunk stored so far (those whose store did not fail), by index."""
        return {
            index: store.result()
            for index, store in zip(self.indexes, self.stores, strict=True)
            if store.done() and not store.cancelled() and store.exception() is None
        }

    def digests(self) -> list[bytes]:
        """The hashes of the chunks stored so far, in the order they came."""
        return list(self.stored_chunks().values())
