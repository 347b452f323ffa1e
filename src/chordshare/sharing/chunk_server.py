"""What a node serves of its files: chunks, whole small files, where a name is, its list.

Chunks come from the store, the `--share` folder, or the download cache, whichever has the
bytes asked for: a getter names the file by its SHA-256 and checks every chunk it gets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    INLINE_LIMIT,
    FileError,
    FileListing,
    FoundFile,
    Locator,
    Refusal,
    StoredFile,
)
from chordshare.files.ownership import refuse_unless_owner
from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.shared_dir import SharedDirectory
from chordshare.sharing.soft_state import SoftState
from chordshare.sharing.throttle import Throttle
from chordshare.sharing.traffic import Traffic
from chordshare.sharing.version_book import VersionBook
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import NodeStore

log = logging.getLogger(__name__)


class ChunkServer:
    def __init__(
        self,
        store: NodeStore,
        book: VersionBook,
        soft: SoftState,
        traffic: Traffic,
        shared: SharedDirectory | None = None,
        owns: Callable[[str], bool | None] | None = None,
        cache: DownloadCache | None = None,
    ) -> None:
        self.store = store
        self.book = book
        self.soft = soft
        self.traffic = traffic
        self.shared = shared
        self.owns = owns
        self.cache = cache

    async def fetch_chunks(
        self, sha256: bytes, indexes: Sequence[int], throttle: Throttle, manifest_id: bytes = b""
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The chunks asked for, each sent once `throttle` lets its bytes go (the stream is
        one flow of it); with `manifest_id`, those of the file with that very manifest."""
        stored = self.store.by_sha256(sha256)
        from_cache: DownloadCache | None = None
        if manifest_id:
            exact = self._version(manifest_id, stored)
            if exact is None or exact.sha256 != sha256:
                raise FileError(Refusal.NOT_FOUND, "no file with that manifest here")
            manifest, read = exact, self._read_stored
        elif stored:
            manifest = stored[0]
            read = self._read_stored
        elif self.shared is not None and (local := self.shared.by_sha256(sha256)) is not None:
            manifest = local.manifest
            read = self.shared.read_chunk
        elif self.cache is not None and (cached := self.cache.manifest_of(sha256)) is not None:
            manifest = cached
            read = self.cache.read_chunk
            from_cache = self.cache
            self.cache.touch(sha256)
        else:
            raise FileError(Refusal.NOT_FOUND, f"no file with sha256 {sha256.hex()} here")
        for index in indexes:
            if not 0 <= index < len(manifest.chunks):
                raise FileError(Refusal.INVALID_ARGUMENT, f"no chunk {index} in that file")
        # One chunk read ahead: the next is read from disk while this one is sent.
        reading: asyncio.Task[bytes] | None = None
        flow = object()
        try:
            for position, index in enumerate(indexes):
                if reading is None:
                    reading = asyncio.create_task(asyncio.to_thread(read, manifest, index))
                try:
                    data = await reading
                except (ChunkError, OSError) as err:
                    raise FileError(Refusal.NOT_FOUND, f"chunk {index}: {err}") from None
                reading = None
                self.traffic.sent(len(data))
                if from_cache is not None:
                    from_cache.served(len(data))
                if position + 1 < len(indexes):
                    following = indexes[position + 1]
                    reading = asyncio.create_task(asyncio.to_thread(read, manifest, following))
                await throttle.take(flow, len(data))
                yield index, data
        finally:
            throttle.forget(flow)
            if reading is not None:
                reading.cancel()

    def _read_stored(self, manifest: Manifest, index: int) -> bytes:
        # Not re-hashed here: the receiver verifies every chunk against the manifest.
        return self.store.read_chunk(manifest.chunks[index], verify=False)

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]:
        has = self.store.has_chunk
        return await asyncio.to_thread(
            lambda: [i for i, d in enumerate(digests) if len(d) != 32 or not has(d)]
        )

    def _version(self, manifest_id: bytes, stored: Sequence[Manifest]) -> Manifest | None:
        """The file stored here with that manifest: live, or kept after a replace."""
        live = next((m for m in stored if m.id == manifest_id), None)
        return live if live is not None else self.store.retired(manifest_id)

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        """The newest version of name known here and who serves it; with the bytes too
        when the file is stored here and at most `inline_up_to` (and INLINE_LIMIT) long.
        With `manifest_id`, the version of name with that manifest, served by this node."""
        if owner_only and self.owns is not None:
            refuse_unless_owner(self.book.address, self.owns(name), name)
        stored = self.store.manifest(name)
        if manifest_id:
            live = [stored] if stored is not None else []
            exact = self._version(manifest_id, live)
            if exact is None or exact.name != name:
                return None
            return FoundFile(exact, (self.book.address,))
        sharers = self._live_sharers(name)
        if stored is not None:
            manifest = stored
            holders = self.book.holders(name)
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

    def _live_sharers(self, name: str) -> list[Locator]:
        """The locators of name that still stand: a cached copy is a version some node
        fetched, so a removal of the name at a newer version hides it (else a cache would
        bring a removed file back); a shared file stands as its sharer shares it."""
        sharers = self.soft.sharers(name)
        if not any(loc.cached for loc in sharers):
            return sharers
        newest = self.book.version_of(name)
        if newest is None or not newest.deleted:
            return sharers
        return [s for s in sharers if not s.cached or s.manifest.created > newest.version]

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
