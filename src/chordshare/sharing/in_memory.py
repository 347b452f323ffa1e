"""A whole file held in memory, cut into the chunks of its manifest.

A small file is read whole for a put, and a holder sends a small file's bytes with its
answer to a get: both then serve chunks from those bytes instead of reading or asking again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from chordshare.files.manifest import Manifest
from chordshare.transport.files import ChunkFetcher


def piece(data: bytes, manifest: Manifest, index: int) -> bytes:
    """Chunk `index` of a whole file held in memory."""
    start = index * manifest.chunk_size
    return data[start : start + manifest.chunk_length(index)]


async def chunks_of(data: bytes, manifest: Manifest) -> AsyncIterator[tuple[int, bytes]]:
    for index in range(len(manifest.chunks)):
        yield index, piece(data, manifest, index)


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
            yield index, piece(data, manifest, index)

    return fetch_or_slice
