"""Part of a file, fetched from its holders: only the chunks that cover the bytes asked for,
each checked against the manifest's SHA-256 as it arrives, the bytes handed on in order as
soon as they can be. What a Range request of the REST API (a player seeking in a video)
needs; a whole download pulls from every holder at once instead (`download`).

A few chunks are asked of one holder at a time, so memory stays at a few chunks whatever
the span; a holder that fails, stalls, lies or lacks a chunk is passed over for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from chordshare.files.manifest import Manifest
from chordshare.sharing.download import DownloadError
from chordshare.transport.files import ChunkFetcher

CHUNKS_AT_ONCE = 4
CHUNK_TIMEOUT = 10.0  # seconds a holder may take to send the next chunk


class _PassedOver(Exception):
    """A holder that cannot serve the span; the message says why."""


def covering(manifest: Manifest, start: int, end: int) -> range:
    """The indexes of the chunks that hold bytes start..end-1."""
    if start >= end:
        return range(0)
    return range(start // manifest.chunk_size, (end - 1) // manifest.chunk_size + 1)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _verified(
    fetch: ChunkFetcher, holder: str, manifest: Manifest, batch: Sequence[int], chunk_timeout: float
) -> AsyncGenerator[tuple[int, bytes], None]:
    """The chunks of batch holder sends, each checked; _PassedOver when it misbehaves."""
    asked = set(batch)
    try:
        stream = aiter(fetch(holder, manifest.sha256, list(batch)))
    except Exception as err:
        raise _PassedOver(f"{holder}: {err}") from err
    async with contextlib.aclosing(stream):  # type: ignore[type-var]  # ends the call early
        while True:
            try:
                async with asyncio.timeout(chunk_timeout):
                    index, data = await anext(stream)
            except StopAsyncIteration:
                return
            except Exception as err:
                raise _PassedOver(f"{holder}: {type(err).__name__}: {err}") from err
            if index not in asked or len(data) != manifest.chunk_length(index):
                raise _PassedOver(f"{holder}: sent a chunk {index} that was not asked for")
            asked.discard(index)
            if await asyncio.to_thread(_sha256, data) != manifest.chunks[index]:
                raise _PassedOver(f"{holder}: chunk {index} failed its SHA-256 check")
            yield index, data


async def stream_span(
    manifest: Manifest,
    holders: Sequence[str],
    fetch: ChunkFetcher,
    start: int,
    end: int,
    *,
    at_once: int = CHUNKS_AT_ONCE,
    chunk_timeout: float = CHUNK_TIMEOUT,
) -> AsyncIterator[bytes]:
    """Bytes start..end-1 of the file, in order, in pieces; DownloadError when no holder
    can give a chunk they need."""
    wanted = covering(manifest, start, end)
    holders = list(dict.fromkeys(holders))
    passed_over: list[str] = []
    arrived: dict[int, bytes] = {}  # chunks that came ahead of their turn
    position = 0  # wanted[position] is the next chunk to hand on
    while position < len(wanted):
        if not holders:
            reasons = "; ".join(passed_over) or "no holder"
            raise DownloadError(
                f"{manifest.name!r}: no holder gave chunk {wanted[position]} ({reasons})"
            )
        holder = holders[0]
        batch = [i for i in wanted[position : position + at_once] if i not in arrived]
        sent: set[int] = set()
        try:
            chunks = _verified(fetch, holder, manifest, batch, chunk_timeout)
            async with contextlib.aclosing(chunks):
                async for index, data in chunks:
                    sent.add(index)
                    arrived[index] = data
                    while position < len(wanted) and wanted[position] in arrived:
                        offset = wanted[position] * manifest.chunk_size
                        piece = arrived.pop(wanted[position])[max(0, start - offset) : end - offset]
                        position += 1
                        yield bytes(piece)
        except _PassedOver as err:
            passed_over.append(str(err))
            holders.remove(holder)
            continue
        if sent != set(batch):
            # It sent fewer than asked: it no longer has them all.
            passed_over.append(f"{holder}: did not send every chunk asked for")
            holders.remove(holder)
