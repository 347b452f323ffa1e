"""What one node can ask another about files: the interface. The values it carries are
`sharing.core.messages`.

Two implementations: gRPC (`sharing.rpc`) for real use and in-memory (`sharing.memory`) for
fast tests of many nodes. Application refusals travel as `FileError` (a gRPC status on the
wire); a peer that cannot be reached raises `transport.base.PeerError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Protocol

from chordshare.sharing.core.messages import (
    INLINE_LIMIT,
    SMALL_PUT,
    FileError,
    FileListing,
    FileVersion,
    FoundFile,
    IndexEntry,
    IndexRecord,
    Locator,
    OfferAnswer,
    PutHeader,
    PutOutcome,
    Refusal,
    StoredFile,
)
from chordshare.storage.catalog import Manifest

__all__ = [
    "INLINE_LIMIT",
    "SMALL_PUT",
    "FileError",
    "FileListing",
    "FileVersion",
    "FoundFile",
    "IndexEntry",
    "IndexRecord",
    "Locator",
    "OfferAnswer",
    "PutHeader",
    "PutOutcome",
    "Refusal",
    "StoredFile",
]


class FilePeers(Protocol):
    async def put_file(
        self,
        address: str,
        header: PutHeader,
        chunks: AsyncIterable[tuple[int, bytes]],
        trailer: Callable[[], Manifest] | None = None,
    ) -> PutOutcome: ...

    async def missing_chunks(self, address: str, digests: Sequence[bytes]) -> list[int]: ...

    def fetch_chunks(
        self, address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]: ...

    async def find_file(
        self, address: str, name: str, inline_up_to: int = 0, owner_only: bool = False
    ) -> FoundFile | None: ...

    async def offer(self, address: str, versions: Sequence[FileVersion]) -> OfferAnswer: ...

    async def delete(
        self, address: str, name: str, version: float = 0.0, replica: bool = False
    ) -> bool: ...

    async def publish_index(
        self, address: str, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None: ...

    async def query_index(self, address: str, key: str) -> list[IndexEntry]: ...

    async def publish_locators(
        self, address: str, locators: Sequence[Locator], ttl: float
    ) -> None: ...

    async def list_files(self, address: str) -> FileListing: ...

    async def close(self) -> None: ...
