"""A node's download cache: whole files it fetched for its REST API's downloads and for
its clients' gets (`keeping`), kept in its data directory by content hash, served from
there to the API again and to every other getter as one more source, up to a size limit
(`--api-cache`), the least recently used evicted first to make room.

A file is fetched into the cache once however many requests want it at the same time: the
others wait for that fetch. Room is made before a fetch starts, and a fetch that fails
leaves nothing behind, so the files cached and being fetched never add up to more than the
limit.

Every chunk of a cached file was checked against the manifest's SHA-256 as it arrived, and
the file is named by the whole file's SHA-256; it is not hashed again when served (the
getter checks every chunk it receives). Listeners hear of each name cached or evicted: the
node announces the names its cache keeps (locators marked `cached`, `publishing`) and
withdraws them when the file goes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from chordshare.files.manifest import Manifest

DEFAULT_CACHE_BYTES = 1024**3


@dataclass
class _Cached:
    size: int
    # The names the file was fetched under (the same bytes may have several), with their
    # manifests: what the node announces and serves chunks by.
    manifests: dict[str, Manifest] = field(default_factory=dict)


class DownloadCache:
    """Files by content hash (hex) in `folder`, `limit` bytes at most; 0 keeps none."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.used_bytes = 0
        self.evictions = 0
        self.served_bytes = 0  # chunk bytes of cached files served to other getters
        self._files: OrderedDict[str, _Cached] = OrderedDict()  # least recently used first
        self._reserved = 0  # bytes of the fetches under way
        self._fetching: dict[str, asyncio.Future[None]] = {}
        self._listeners: list[Callable[[str], None]] = []

    def empty(self) -> None:
        """Remove whatever the folder holds (blocking): an earlier run's files, which the
        books do not know."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call listener(name) when a name is cached, and when its file is evicted."""
        self._listeners.append(listener)

    def _changed(self, names: list[str]) -> None:
        for name in names:
            for listener in self._listeners:
                listener(name)

    @property
    def files(self) -> int:
        return len(self._files)

    def manifests(self) -> list[Manifest]:
        """Every name the cache keeps a file for, with the manifest it was fetched by."""
        return [m for cached in self._files.values() for m in cached.manifests.values()]

    def manifest_of(self, sha256: bytes) -> Manifest | None:
        """A manifest of the cached file with these bytes, or None."""
        cached = self._files.get(sha256.hex())
        return None if cached is None else next(iter(cached.manifests.values()))

    def keeps(self, manifest: Manifest) -> bool:
        """Whether the cache has that file under its name, or is fetching its bytes."""
        digest = manifest.sha256.hex()
        cached = self._files.get(digest)
        if digest in self._fetching:
            return True
        return cached is not None and manifest.name in cached.manifests

    def open(self, digest: str) -> int | None:
        """A descriptor of the cached copy (counted as a use), or None. Once open, the copy
        stays readable through it even if evicted (its bytes go when it is closed)."""
        if digest not in self._files:
            return None
        self._files.move_to_end(digest)
        return os.open(self.folder / digest, os.O_RDONLY)

    def touch(self, sha256: bytes) -> None:
        """Count a use of the cached file with these bytes (a getter fetched from it)."""
        if sha256.hex() in self._files:
            self._files.move_to_end(sha256.hex())

    def read_chunk(self, manifest: Manifest, index: int) -> bytes:
        """Chunk `index` of a cached file (blocking: run it in a thread). OSError when the
        file was evicted meanwhile."""
        fd = os.open(self.folder / manifest.sha256.hex(), os.O_RDONLY)
        try:
            data = os.pread(fd, manifest.chunk_length(index), index * manifest.chunk_size)
        finally:
            os.close(fd)
        if len(data) != manifest.chunk_length(index):
            raise OSError(f"the cached copy of {manifest.name!r} is shorter than the file")
        return data

    def served(self, nbytes: int) -> None:
        self.served_bytes += nbytes

    async def fetch(
        self, manifest: Manifest, download: Callable[[Path], Awaitable[dict[str, int]]]
    ) -> dict[str, int] | None:
        """Put the file into the cache with `download(path)` unless it is there; returns
        what `download` reported (who served how many bytes), {} when it was cached already
        or another request fetched it meanwhile, None when it is not kept: caching is off,
        the file is over the limit, or the fetches under way fill the room."""
        digest, size = manifest.sha256.hex(), manifest.size
        while (under_way := self._fetching.get(digest)) is not None:
            await asyncio.shield(under_way)  # then cached, or failed: looked at again
        cached = self._files.get(digest)
        if cached is not None:
            if manifest.name not in cached.manifests:  # the same bytes under another name
                cached.manifests[manifest.name] = manifest
                self._changed([manifest.name])
            return {}
        if self.limit == 0 or self._reserved + size > self.limit:
            return None  # caching off, the file over the limit, or the room taken
        doomed, gone = self._evict(size)
        done = asyncio.get_running_loop().create_future()
        self._fetching[digest] = done
        self._reserved += size
        path = self.folder / digest
        try:
            self._changed(gone)
            # Unlinked after the books are right: other requests run meanwhile.
            for old in doomed:
                await asyncio.to_thread(old.unlink, True)
            sources = await download(path)
        except BaseException:
            await asyncio.to_thread(path.with_name(path.name + ".part").unlink, True)
            raise
        else:
            self._files[digest] = _Cached(size, {manifest.name: manifest})
            self.used_bytes += size
            self._changed([manifest.name])
            return sources
        finally:
            self._reserved -= size
            del self._fetching[digest]
            done.set_result(None)

    def _evict(self, size: int) -> tuple[list[Path], list[str]]:
        """Drop the least recently used files from the books until `size` more bytes fit;
        returns their paths, to unlink, and the names they were cached under."""
        doomed: list[Path] = []
        names: list[str] = []
        while self._files and self.used_bytes + self._reserved + size > self.limit:
            digest, evicted = self._files.popitem(last=False)
            self.used_bytes -= evicted.size
            self.evictions += 1
            doomed.append(self.folder / digest)
            names += evicted.manifests
        return doomed, names
