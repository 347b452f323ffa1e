"""File operations on the network, as a user (CLI, console, REST API) asks for them.

put (`putting`): find the owner of the name's key and stream the file to it; the owner
copies it on to its successors. put_stream (`stream_put`): the same for bytes that arrive
as a stream, sent on as they arrive. get: ask the owner (or, if it has no copy yet, its
successors) for the manifest and the holders, then pull chunks from all of them at once.
search: ask the owner of each word's key which names hold that word. A `Ring` answers
"who owns this key" and "who follows this node"; the node runtime and a remote client each
provide one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chordshare.chord.messages import NodeRef
from chordshare.files.links import Link
from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    INLINE_LIMIT,
    FileError,
    FileListing,
    FoundFile,
    IndexEntry,
    PutOutcome,
    Refusal,
)
from chordshare.files.names import check_stored_name, keywords
from chordshare.files.placement import (
    DEFAULT_REPLICAS,
    file_key,
    index_key,
)
from chordshare.files.publisher import Claim, Signer
from chordshare.files.search import (
    ambiguous,
    content_candidates,
    content_query_key,
    parse_content_address,
    ranked,
    word_query_keys,
)
from chordshare.files.unfinished import Resume
from chordshare.sharing.download import ChunkSink, DownloadReport, download
from chordshare.sharing.in_memory import serving_inline
from chordshare.sharing.putting import Putter, version_after
from chordshare.sharing.ring import Ring
from chordshare.sharing.routes import RouteCache
from chordshare.sharing.stream_put import StreamPutter
from chordshare.transport.base import PeerError
from chordshare.transport.files import FilePeers, chunk_fetcher, exact_fetcher

REMOVE_RETRY_WAITS = (0.0, 0.25, 0.5, 1.0)  # seconds before each try of a removal


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


class FileClient:
    def __init__(
        self,
        ring: Ring,
        peers: FilePeers,
        replicas: int = DEFAULT_REPLICAS,
        routes: RouteCache | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.ring = ring
        self.peers = peers
        self.replicas = replicas
        # The publisher's key every put and removal is signed with (`files.publisher`);
        # None: unsigned, which anyone may replace or remove.
        self.signer = signer
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
        resumed: Callable[[Resume], None] | None = None,
    ) -> PutOutcome:
        """Store a local file under name (default: its file name); see `putting`.
        `resumed` hears what a rerun of an interrupted put found on the owner."""
        putter = Putter(self.ring.space, self.peers, self.routes, self._lookup, self.signer)
        return await putter.put(path, name, replace, chunk_size, progress, resumed)

    async def put_stream(
        self,
        name: str,
        size: int,
        data: AsyncIterable[bytes],
        replace: bool = False,
        chunk_size: int | None = None,
    ) -> PutOutcome:
        """Store `size` bytes that arrive as a stream (an upload's body) under name, sent on
        to the owner as they arrive, never staged; see `stream_put`. A body that is not
        `size` bytes long is a BodyLengthError, and nothing is stored."""
        putter = Putter(self.ring.space, self.peers, self.routes, self._lookup, self.signer)
        return await StreamPutter(putter, self._manifest_of).put(
            name, size, data, replace, chunk_size
        )

    async def put_bytes(self, name: str, data: bytes, replace: bool = False) -> PutOutcome:
        """Store bytes held in memory under name (a folder's manifest), as a local file."""
        putter = Putter(self.ring.space, self.peers, self.routes, self._lookup, self.signer)
        return await putter.put_bytes(name, data, replace)

    async def _manifest_of(self, name: str) -> Manifest | None:
        found = await self._find_name(name)
        return None if found is None else found.manifest

    async def _lookup(self, key: int) -> NodeRef:
        """The owner of key as the ring says (O(log N) hops), remembered for guesses."""
        owner = await self.ring.owner(key)
        self.routes.learn([owner])
        return owner

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
                    found = await self.peers.at(candidates[attempt].address).find_file(
                        name, inline_up_to=INLINE_LIMIT
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
            found = await self.peers.at(guess.address).find_file(
                name, inline_up_to=INLINE_LIMIT, owner_only=True
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
        exact: bool = False,
        sink: ChunkSink | None = None,
    ) -> DownloadReport:
        """Download target to `out`; `exact`: the chunks of found's very manifest (a
        link's, which may be a version kept after a replace), not of its sha256; `sink`:
        every chunk to it instead of a file (`download`)."""
        found = found or await self.find(target)
        if not found.holders:
            raise FileError(Refusal.NOT_FOUND, f"{target}: no holder is serving it now")
        fetch = exact_fetcher(self.peers, found.manifest.id) if exact else chunk_fetcher(self.peers)
        if found.inline is not None:
            fetch = serving_inline(fetch, *found.inline, found.manifest)
        return await download(
            found.manifest, found.holders, fetch, out, progress=progress, sink=sink
        )

    async def find_link(self, link: Link) -> NetworkFile:
        """Where the exact bytes a link names can be had: the name's newest version if it
        is those bytes, else a version its holders keep after a replace or removal
        (`storage.retired`); FileError NOT_FOUND when no holder keeps them any more."""
        found = await self._find_name(link.name)
        if found is not None and found.manifest.id == link.manifest_id:
            return found
        owner = await self._lookup(file_key(self.ring.space, link.name))
        candidates = [owner]
        with contextlib.suppress(PeerError):
            candidates += (await self.ring.successors(owner))[: self.replicas]
        manifest, holders = None, []
        for node in candidates:
            with contextlib.suppress(PeerError):
                kept = await self.peers.at(node.address).find_file(
                    link.name, manifest_id=link.manifest_id
                )
                if kept is not None and kept.manifest.id == link.manifest_id:
                    manifest = kept.manifest
                    holders += [h for h in kept.holders if h not in holders]
        if manifest is None:
            now = "was replaced" if found is not None else "is not in the network"
            raise FileError(
                Refusal.NOT_FOUND,
                f"the bytes this link names are gone: {link.name!r} {now}, and no holder "
                "keeps the version the link names any more",
            )
        return NetworkFile(manifest, tuple(holders))

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
                for entry in await self.peers.at(target.address).query_index(record_key):
                    entries.setdefault(entry.name, entry)
            except PeerError:
                continue
        return list(entries.values())

    async def remove(self, name: str) -> None:
        """Remove name from the network: confirmed once its owner and one more holder
        have the removal. "Not now" (UNAVAILABLE), or no answer, is tried again through a
        fresh lookup, as a put is."""
        check_stored_name(name)
        key = file_key(self.ring.space, name)
        retried = False
        for wait in REMOVE_RETRY_WAITS:
            await asyncio.sleep(wait)
            owner = await self._lookup(key)
            try:
                existed = await self._delete_at(owner, name)
            except (PeerError, FileError) as err:
                if isinstance(err, FileError) and err.refusal is not Refusal.UNAVAILABLE:
                    raise
                if wait == REMOVE_RETRY_WAITS[-1]:
                    raise
                self.routes.forget(owner)
                retried = True
                continue
            # After a try that failed, the name may be gone because that try removed it.
            if not existed and not retried:
                raise FileError(Refusal.NOT_FOUND, f"no file named {name!r} in the network")
            return

    async def _delete_at(self, owner: NodeRef, name: str) -> bool:
        """Ask the owner to remove name, signed when this client has a key (again above
        the owner's version when this machine's clock is behind it)."""
        answerer = self.peers.at(owner.address)
        if self.signer is None:
            return await answerer.delete(name)
        version = version_after(None)
        try:
            return await answerer.delete(name, version, claim=self._removal(name, version))
        except FileError as err:
            if err.version_floor is None:
                raise
            version = version_after(err.version_floor)
            return await answerer.delete(name, version, claim=self._removal(name, version))

    def _removal(self, name: str, version: float) -> Claim:
        assert self.signer is not None
        return self.signer.sign(name, version, b"", deleted=True)

    async def list_node(self, address: str) -> FileListing:
        return await self.peers.at(address).list_files()

    async def list_network(self, nodes: Sequence[NodeRef]) -> list[NetworkFile]:
        """Every file stored or shared on the given nodes (a ring walk), newest version of
        each name, with the nodes that hold it."""
        listings = await asyncio.gather(
            *(self.peers.at(n.address).list_files() for n in nodes), return_exceptions=True
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
