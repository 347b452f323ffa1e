"""What one node can ask another about files, written once: `FileAnswerer` is what a node
answers, and a caller reaches another node's answerer with `FilePeers.at(address)`.

Two implementations: gRPC (`files_grpc`, served by `files_servicer`) for real use and
in-memory (`files_memory`) for fast tests of many nodes. The values are
`chordshare.files.messages`. A refusal travels as `FileError` (a gRPC status on the wire);
a peer that cannot be reached raises `transport.base.PeerError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Protocol

from chordshare.files.manifest import Manifest
from chordshare.files.messages import (
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    KeepOutcome,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
)
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut


class FileAnswerer(Protocol):
    """What answers file requests on one node (its `FileService`), and what a caller holds
    of another node through `FilePeers.at`."""

    async def put_file(
        self,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome:
        """Store a file; with header.manifest_last, `trailer` gives the manifest with its
        hashes once every chunk has been read."""
        ...

    async def missing_chunks(self, digests: Sequence[bytes]) -> list[int]: ...

    def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The chunks asked for; `repair`: asked to heal a damaged copy (scrubbing), not for
        a user's get, so the serving node counts them as repair traffic. `manifest_id`: the
        chunks of the file with that manifest (`Manifest.id`), a version kept after a
        replace too (`storage.retired`), not of whichever file has that sha256."""
        ...

    async def find_file(
        self,
        name: str,
        inline_up_to: int = 0,
        owner_only: bool = False,
        manifest_id: bytes = b"",
    ) -> FoundFile | None:
        """The newest version of name known here and who serves it; with `manifest_id`,
        the version of name with that manifest instead (live, or kept after a replace or
        removal), or None."""
        ...

    async def find_for_put(
        self, name: str, owner_only: bool = False
    ) -> tuple[FoundFile | None, UnfinishedPut | None]:
        """What a putter asks first: `find_file`'s answer, and what the node keeps of a put
        of the name that ended unfinished (`files.unfinished`)."""
        ...

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer: ...

    async def delete(
        self,
        name: str,
        version: float = 0.0,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> bool: ...

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None: ...

    async def query_index(self, key: str) -> list[IndexEntry]: ...

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None: ...

    async def list_files(self) -> FileListing: ...

    async def keep_file(self, name: str, manifest_id: bytes) -> KeepOutcome:
        """Keep a copy of the version of name with that manifest (`Manifest.id`), which a
        client just got through this node: looked up and fetched by the node itself, in the
        background, into its download cache."""
        ...


class FilePeers(Protocol):
    """The other nodes, as one node (or a client) calls them."""

    def at(self, address: str) -> FileAnswerer: ...

    async def close(self) -> None: ...


ChunkFetcher = Callable[[str, bytes, Sequence[int]], AsyncIterator[tuple[int, bytes]]]
"""fetch(address, file_sha256, indexes) -> async iterator of (index, data) pairs, in any
order, possibly fewer than asked; raises PeerError or FileError when the peer fails. What a
download and the scrubber take."""


def chunk_fetcher(peers: FilePeers, repair: bool = False) -> ChunkFetcher:
    """The chunk streams of `peers`, as a function of the holder's address; `repair`: for
    healing a damaged copy, not for a user's get."""

    def fetch(
        address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        return peers.at(address).fetch_chunks(sha256, indexes, repair)

    return fetch


def exact_fetcher(peers: FilePeers, manifest_id: bytes) -> ChunkFetcher:
    """The chunk streams of `peers` for the file with one manifest (`Manifest.id`)."""

    def fetch(
        address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        return peers.at(address).fetch_chunks(sha256, indexes, manifest_id=manifest_id)

    return fetch


class LocalFirst:
    """`peers`, with the node at `address` answered in-process by `local`: a face on a node
    (its REST API) that puts to or gets from that very node does not send the bytes to
    itself over loopback gRPC."""

    def __init__(self, address: str, local: FileAnswerer, peers: FilePeers) -> None:
        self.address = address
        self.local = local
        self.peers = peers

    def at(self, address: str) -> FileAnswerer:
        return self.local if address == self.address else self.peers.at(address)

    async def close(self) -> None:
        """The peers belong to the node; it closes them."""
