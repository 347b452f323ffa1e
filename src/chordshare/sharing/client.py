"""File operations on the network, as a user (CLI, console, REST API) asks for them.

put: find the owner of the name's key and stream the file to it; the owner copies it on to
its successors. get: ask the owner (or, if it has no copy yet, its successors) for the
manifest and the holders, then pull chunks from all of them at once. search: ask the owner
of each word's key which names hold that word. A `Ring` answers "who owns this key" and
"who follows this node"; the node runtime and a remote client each provide one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chordshare.chord.messages import NodeRef
from chordshare.sharing.chunking import LocalFile, ManifestHasher, chunk_manifest, read_for_put
from chordshare.sharing.download import ChunkFetcher, DownloadReport, ThreadFetcher, download
from chordshare.sharing.names import check_new_name, check_stored_name, keywords
from chordshare.sharing.peers import (
    INLINE_LIMIT,
    SMALL_PUT,
    FileError,
    FileListing,
    FilePeers,
    FoundFile,
    IndexEntry,
    PutHeader,
    PutOutcome,
    Refusal,
)
from chordshare.sharing.placement import (
    DEFAULT_REPLICAS,
    file_key,
    index_key,
)
from chordshare.sharing.ring import Ring
from chordshare.sharing.routes import RouteCache
from chordshare.sharing.search import (
    ambiguous,
    content_candidates,
    content_query_key,
    parse_content_address,
    ranked,
    word_query_keys,
)
from chordshare.storage.catalog import Manifest
from chordshare.transport.base import PeerError

# The owner may die, leave or change while we put: look it up again after these waits (a
# leaving owner refuses puts until its successors have taken its keys over).
PUT_RETRY_WAITS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True, slots=True)
class NetworkFile:
    """A file as the whole network knows it: its manifest and who stores a copy."""

    manifest: Manifest
    holders: tuple[str, ...]
    # A small file's bytes as one holder sent them with its answer (not verified yet).
    inline: tuple[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    found: FoundFile | None  # a FindFile answer: None is "no such name here"


def _piece(data: bytes, manifest: Manifest, index: int) -> bytes:
    """Chunk `index` of a whole file held in memory."""
    start = index * manifest.chunk_size
    return data[start : start + manifest.chunk_length(index)]


def serving_inline(
    fetch: ChunkFetcher, holder: str, data: bytes, manifest: Manifest
) -> ChunkFetcher:
    """A fetcher that takes holder's chunks from the bytes it already sent and asks every
    other holder as `fetch` does. The download verifies them like any fetched chunk."""

    async def fetch_or_slice(
        address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        if address != holder:
            async for item in fetch(address, sha256, indexes):
                yield item
            return
        for index in indexes:
            yield index, _piece(data, manifest, index)

    return fetch_or_slice


async def _chunks_of(data: bytes, manifest: Manifest) -> AsyncIterator[tuple[int, bytes]]:
    for index in range(len(manifest.chunks)):
        yield index, _piece(data, manifest, index)


async def _read_chunks(
    path: Path, manifest: Manifest, hasher: ManifestHasher | None = None
) -> AsyncIterator[tuple[int, bytes]]:
    """The file's chunks, read in a thread one ahead of the one being sent (flat memory:
    two chunks at most). With `hasher` (manifest: the promise) each chunk is hashed in the
    thread that reads it, for a manifest sent after the chunks; a file that is not the size
    it was is an OSError."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)

    def read(index: int) -> asyncio.Task[bytes]:
        if hasher is not None:
            return asyncio.create_task(asyncio.to_thread(hasher.read_chunk, fd, index))
        offset = index * manifest.chunk_size
        length = manifest.chunk_length(index)
        return asyncio.create_task(asyncio.to_thread(os.pread, fd, length, offset))

    count = manifest.chunk_count
    reading = read(0) if count else None
    try:
        for index in range(count):
            assert reading is not None
            data = await reading
            reading = read(index + 1) if index + 1 < count else None
            if hasher is not None and len(data) != manifest.chunk_length(index):
                raise OSError(f"{path}: the file changed while it was being put")
            yield index, data
    finally:
        # A read under way cannot be stopped: let it end before closing its descriptor.
        if reading is not None:
            await asyncio.gather(reading, return_exceptions=True)
        os.close(fd)


class _Progress:
    """A put's progress across its attempts: a retry reports only the bytes it gets past
    the furthest attempt so far, so the total never exceeds the file."""

    def __init__(self, report: Callable[[int], None] | None) -> None:
        self.report = report
        self.shown = 0
        self.attempt = 0

    def again(self) -> Callable[[int], None]:
        self.attempt = 0
        return self.advance

    def advance(self, nbytes: int) -> None:
        self.attempt += nbytes
        if self.report is not None and self.attempt > self.shown:
            self.report(self.attempt - self.shown)
            self.shown = self.attempt


class FileClient:
    def __init__(
        self,
        ring: Ring,
        peers: FilePeers,
        replicas: int = DEFAULT_REPLICAS,
        routes: RouteCache | None = None,
    ) -> None:
        self.ring = ring
        self.peers = peers
        self.replicas = replicas
        # The nodes met so far, to guess owners from; pass one to share it between the
        # clients a long-lived face makes (one per request or command).
        self.routes = routes if routes is not None else RouteCache()

    async def put(
        self,
        path: Path,
        name: str | None = None,
        replace: bool = False,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PutOutcome:
        name = check_new_name(name if name is not None else path.name)
        key = file_key(self.ring.space, name)
        guess = self.routes.guess(key)
        # The file is looked at (a small one read and hashed) while the owner is looked up,
        # in one thread call.
        reading = asyncio.ensure_future(
            asyncio.to_thread(read_for_put, path, name, chunk_size, SMALL_PUT)
        )
        owner: NodeRef | None = None
        try:
            if guess is None:
                owner = await self._lookup(key)
        except PeerError:
            pass  # looked up again in the loop
        finally:
            local = await reading
        counter = _Progress(progress)
        if guess is not None:
            try:
                return await self._put_to(guess, local, replace, counter, guessed=True)
            except FileError as err:
                if err.refusal is not Refusal.OUT_OF_RANGE:
                    raise
            except PeerError:
                self.routes.forget(guess)
        last_error: PeerError | None = None
        for wait in PUT_RETRY_WAITS:
            await asyncio.sleep(wait)
            if owner is None:
                owner = await self._lookup(key)
            try:
                return await self._put_to(owner, local, replace, counter)
            except PeerError as err:
                last_error = err
                self.routes.forget(owner)
                owner = None
        assert last_error is not None
        raise last_error

    async def _put_to(
        self,
        owner: NodeRef,
        local: LocalFile,
        replace: bool,
        progress: _Progress,
        guessed: bool = False,
    ) -> PutOutcome:
        if local.manifest is None:
            # Not hashed yet. A name new to the owner is sent as it is hashed (the file is
            # read once). One it holds is hashed first, which finds the same bytes
            # unchanged and sends only the chunks the owner lacks; so is a new name whose
            # first chunk the owner has (the same content under another name, most
            # likely: it is then not sent again). The owner refuses a streamed put of a
            # name it turns out to hold (another put won the race) at its header, and the
            # file is then hashed first too.
            asked, lacks_first = await asyncio.gather(
                self.peers.find_file(owner.address, local.name, owner_only=guessed),
                self._lacks_first_chunk(owner, local),
            )
            if asked is None and lacks_first:
                try:
                    streaming = progress.again()
                    return await self._put_streamed(owner, local, replace, streaming, guessed)
                except FileError as err:
                    if err.refusal is not Refusal.ALREADY_EXISTS:
                        raise
            local.manifest = await asyncio.to_thread(
                chunk_manifest, local.path, local.name, local.chunk_size
            )
        manifest = local.manifest
        # Ask which chunks the owner lacks (content it has under another name is not sent
        # again); for one chunk the answer would cost more than it saves.
        if len(manifest.chunks) > 1:
            missing = set(await self.peers.missing_chunks(owner.address, manifest.chunks))
        else:
            missing = set(range(len(manifest.chunks)))
        if local.data is not None:
            read = _chunks_of(local.data, manifest)
        else:
            read = _read_chunks(local.path, manifest)
        chunks = self._counted(read, missing, progress.again())
        header = PutHeader(manifest, replace=replace, owner_only=guessed)
        return await self.peers.put_file(owner.address, header, chunks)

    async def _lacks_first_chunk(self, owner: NodeRef, local: LocalFile) -> bool:
        if local.first_chunk is None:
            return True
        return bool(await self.peers.missing_chunks(owner.address, [local.first_chunk]))

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
        return await self.peers.put_file(owner.address, header, chunks, hasher.manifest)

    async def _lookup(self, key: int) -> NodeRef:
        """The owner of key as the ring says (O(log N) hops), remembered for guesses."""
        owner = await self.ring.owner(key)
        self.routes.learn([owner])
        return owner

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

    async def find(self, target: str) -> NetworkFile:
        """Where a name (or `sha256:<hex>`) can be had; FileError NOT_FOUND if nowhere."""
        digits = parse_content_address(target)
        if digits is not None:
            candidates = content_candidates(await self._query(content_query_key(digits)), digits)
            if len(candidates) > 1:
                raise FileError(Refusal.FAILED_PRECONDITION, ambiguous(target, candidates))
            for digest, names in candidates.items():
                for name in names:
                    with_bytes = await self._find_name(name)
                    if with_bytes is not None and with_bytes.manifest.sha256 == digest:
                        return with_bytes
            raise FileError(Refusal.NOT_FOUND, f"no file in the network has {target}")
        check_stored_name(target)  # names stored before the new-name rule too
        found = await self._find_name(target)
        if found is None:
            raise FileError(Refusal.NOT_FOUND, f"no file named {target!r} in the network")
        return found

    async def _find_name(self, name: str) -> NetworkFile | None:
        """Ask the owner, then its successors (a new owner may not have its copy yet);
        every holder that answers adds to the holders of the newest version."""
        key = file_key(self.ring.space, name)
        owner, first = await self._ask_guessed_owner(key, name)
        if owner is None:
            owner = await self._lookup(key)
        candidates = [owner]
        best: FoundFile | None = None
        holders: list[str] = []
        inline: tuple[str, bytes] | None = None
        for attempt in range(self.replicas):
            if attempt == 1:
                with contextlib.suppress(PeerError):
                    successors = await self.ring.successors(owner)
                    self.routes.learn(successors)
                    candidates += successors[: self.replicas - 1]
            if attempt >= len(candidates):
                break
            if attempt == 0 and first is not None:
                found: FoundFile | None = first.found
            else:
                try:
                    found = await self.peers.find_file(
                        candidates[attempt].address, name, inline_up_to=INLINE_LIMIT
                    )
                except PeerError:
                    if attempt == 0:
                        self.routes.forget(owner)
                    continue
            if found is None:
                continue
            if best is None or found.manifest.created > best.manifest.created:
                best, holders, inline = found, [], None
            if found.manifest.sha256 == best.manifest.sha256:
                holders += [h for h in found.holders if h not in holders]
                if inline is None and found.data is not None and found.holders:
                    inline = (found.holders[0], found.data)
            if len(holders) >= self.replicas:
                break
        return None if best is None else NetworkFile(best.manifest, tuple(holders), inline)

    async def _ask_guessed_owner(
        self, key: int, name: str
    ) -> tuple[NodeRef | None, _Answer | None]:
        """Ask the node guessed to own key about name: (it, its answer) if it does own
        the key, (None, None) if there is no guess or it was wrong."""
        guess = self.routes.guess(key)
        if guess is None:
            return None, None
        try:
            found = await self.peers.find_file(
                guess.address, name, inline_up_to=INLINE_LIMIT, owner_only=True
            )
        except FileError as err:
            if err.refusal is not Refusal.OUT_OF_RANGE:
                raise
            return None, None
        except PeerError:
            self.routes.forget(guess)
            return None, None
        return guess, _Answer(found)

    async def get(
        self,
        target: str,
        out: Path,
        progress: Callable[[int], None] | None = None,
        found: NetworkFile | None = None,
    ) -> DownloadReport:
        found = found or await self.find(target)
        if not found.holders:
            raise FileError(Refusal.NOT_FOUND, f"{target}: no holder is serving it now")
        fetch: ChunkFetcher = self.peers.fetch_chunks
        # Peers that can stream to a thread (gRPC) do: a get then verifies and writes each
        # chunk in the thread that received it (download.py).
        in_thread: ThreadFetcher | None = getattr(self.peers, "fetch_chunks_in_thread", None)
        if found.inline is not None:
            fetch = serving_inline(fetch, *found.inline, found.manifest)
            in_thread = None
        return await download(
            found.manifest,
            found.holders,
            fetch,
            out,
            progress=progress,
            fetch_in_thread=in_thread,
        )

    async def search(self, text: str) -> list[IndexEntry]:
        """Names with every word of text, or a word that begins with it (`big` finds
        big300.bin); names with the words themselves first."""
        words = keywords(text)
        if not words:
            raise ValueError(f"{text!r}: nothing to search for (no letters or digits)")
        keys = sorted({key for w in words for key in word_query_keys(w)})
        results = await asyncio.gather(*(self._query(key) for key in keys))
        return ranked([entry for found in results for entry in found], words)

    async def _query(self, record_key: str) -> list[IndexEntry]:
        """Index records under a key, from its owner and the owner's successor (a new
        owner may not have been published to yet)."""
        owner = await self._lookup(index_key(self.ring.space, record_key))
        targets = [owner]
        with contextlib.suppress(PeerError):
            targets += (await self.ring.successors(owner))[:1]
        entries: dict[str, IndexEntry] = {}
        for target in targets:
            try:
                for entry in await self.peers.query_index(target.address, record_key):
                    entries.setdefault(entry.name, entry)
            except PeerError:
                continue
        return list(entries.values())

    async def remove(self, name: str) -> None:
        check_stored_name(name)
        owner = await self._lookup(file_key(self.ring.space, name))
        if not await self.peers.delete(owner.address, name):
            raise FileError(Refusal.NOT_FOUND, f"no file named {name!r} in the network")

    async def list_node(self, address: str) -> FileListing:
        return await self.peers.list_files(address)

    async def list_network(self, nodes: Sequence[NodeRef]) -> list[NetworkFile]:
        """Every file stored or shared on the given nodes (a ring walk), newest version of
        each name, with the nodes that hold it."""
        listings = await asyncio.gather(
            *(self.peers.list_files(n.address) for n in nodes), return_exceptions=True
        )
        best: dict[str, tuple[Manifest, list[str]]] = {}
        for node, listing in zip(nodes, listings, strict=True):
            if isinstance(listing, BaseException):
                if isinstance(listing, PeerError):
                    continue
                raise listing
            for stored in listing.files:
                m = stored.manifest
                current = best.get(m.name)
                if current is None or m.created > current[0].created:
                    best[m.name] = (m, [node.address])
                elif m.sha256 == current[0].sha256:
                    current[1].append(node.address)
        return [NetworkFile(m, tuple(h)) for m, h in (best[n] for n in sorted(best))]
