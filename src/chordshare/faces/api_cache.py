"""The REST API's download cache: whole files that full downloads fetched, kept in the
node's data directory by content hash and served again from there, up to a size limit
(`--api-cache`), the least recently used evicted first to make room.

A file is fetched into the cache once however many requests want it at the same time: the
others wait for that fetch. Room is made before a fetch starts, and a fetch that fails
leaves nothing behind, so the files cached and being fetched never add up to more than the
limit.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

DEFAULT_CACHE_BYTES = 1024**3


class DownloadCache:
    """Files by content hash (hex) in `folder`, `limit` bytes at most; 0 keeps none."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.used_bytes = 0
        self.evictions = 0
        self._files: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._reserved = 0  # bytes of the fetches under way
        self._fetching: dict[str, asyncio.Future[None]] = {}

    def open(self, digest: str) -> int | None:
        """A descriptor of the cached copy (counted as a use), or None. Once open, the copy
        stays readable through it even if evicted (its bytes go when it is closed)."""
        if digest not in self._files:
            return None
        self._files.move_to_end(digest)
        return os.open(self.folder / digest, os.O_RDONLY)

    async def fetch(
        self, digest: str, size: int, download: Callable[[Path], Awaitable[dict[str, int]]]
    ) -> dict[str, int] | None:
        """Put the file into the cache with `download(path)` unless it is there; returns
        what `download` reported (who served how many bytes), {} when it was cached already
        or another request fetched it meanwhile, None when it is not kept: caching is off,
        the file is over the limit, or the fetches under way fill the room."""
        while (under_way := self._fetching.get(digest)) is not None:
            await asyncio.shield(under_way)  # then cached, or failed: looked at again
        if digest in self._files:
            return {}
        if self.limit == 0 or self._reserved + size > self.limit:
            return None  # caching off, the file over the limit, or the room taken
        doomed = self._evict(size)
        done = asyncio.get_running_loop().create_future()
        self._fetching[digest] = done
        self._reserved += size
        path = self.folder / digest
        try:
            # Unlinked after the books are right: other requests run meanwhile.
            for old in doomed:
                await asyncio.to_thread(old.unlink, True)
            sources = await download(path)
        except BaseException:
            await asyncio.to_thread(path.with_name(path.name + ".part").unlink, True)
            raise
        else:
            self._files[digest] = size
            self.used_bytes += size
            return sources
        finally:
            self._reserved -= size
            del self._fetching[digest]
            done.set_result(None)

    def _evict(self, size: int) -> list[Path]:
        """Drop the least recently used files from the books until `size` more bytes fit;
        returns their paths, to unlink."""
        doomed = []
        while self._files and self.used_bytes + self._reserved + size > self.limit:
            digest, evicted = self._files.popitem(last=False)
            self.used_bytes -= evicted
            self.evictions += 1
            doomed.append(self.folder / digest)
        return doomed
