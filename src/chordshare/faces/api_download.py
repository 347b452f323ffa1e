"""Downloads through the REST API: `GET /api/v1/files/{name}` (and HEAD) with conditional
and range requests (RFC 9110), and the seed's `POST /download_file`.

A whole file is fetched from every holder at once into the node's download cache
(`sharing.download_cache`) and served from there (the node then serves it to other getters
too, as one more holder); one the cache does not keep (over its size, or caching off) is
streamed from its holders. A Range request fetches only the chunks that cover it and
streams them as they arrive, verified, unless the file is cached already. A file inside a
folder's pack (`files.packs`) has no file of its own: a name no file has is looked for in
the folders it may be inside, and its bytes are cut from its pack. Every file is
`application/octet-stream`: its name is anyone's choice, its type nobody's word.

`X-Chordshare-Sources` says what this response fetched for the request: `address=bytes`
for each holder, empty when nothing was (a cached copy, HEAD). A response streamed from
holders does not carry it: its headers leave before its chunks are fetched.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

from chordshare.faces.api_conditional import (
    RangeNotSatisfiable,
    Span,
    Validators,
    if_range_holds,
    not_modified,
    requested_span,
)
from chordshare.faces.api_errors import error_response
from chordshare.faces.api_inputs import Conditions
from chordshare.files.links import Link
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import local_name
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.folder_client import FolderClient
from chordshare.sharing.in_memory import serving_inline
from chordshare.sharing.keeping import cache_download
from chordshare.sharing.ranges import stream_span
from chordshare.transport.files import chunk_fetcher, exact_fetcher

OCTETS = "application/octet-stream"
READ_PIECE = 256 * 1024
SOURCES = "X-Chordshare-Sources"
# The headers of a download, for its OpenAPI document.
DOWNLOAD_HEADERS = {
    "ETag": "The content's SHA-256, quoted: a strong validator.",
    "Last-Modified": "When this version was put.",
    "X-Content-SHA256": "The whole file's SHA-256 in hex.",
    "Accept-Ranges": "`bytes`.",
    "Content-Disposition": "`attachment` with the file's name.",
}


def documented_download(ranges: bool) -> dict[int | str, dict[str, Any]]:
    """The successful answers of a download; `ranges`: with Range, If-Range and the
    conditional headers too."""
    headers = {
        name: {"description": why, "required": True, "schema": {"type": "string"}}
        for name, why in DOWNLOAD_HEADERS.items()
    }
    headers[SOURCES] = {
        "description": "Who served the chunks fetched for this request (`address=bytes`, "
        "comma separated); empty when none were; absent when streamed from holders.",
        "schema": {"type": "string"},
    }
    body = {"content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}}}
    answers: dict[int | str, dict[str, Any]] = {
        200: {"description": "The file's bytes.", "headers": headers, **body}
    }
    if ranges:
        ranged = {**headers, "Content-Range": {"required": True, "schema": {"type": "string"}}}
        answers[206] = {"description": "The bytes of the range.", "headers": ranged, **body}
        answers[304] = {
            "description": "Not modified: If-None-Match or If-Modified-Since.",
            "headers": {name: headers[name] for name in ("ETag", "Last-Modified")},
        }
    return answers


def content_disposition(name: str) -> str:
    """`attachment` with the file name a browser saves `name` under: its last part
    (`photos/2024/a.jpg` -> `a.jpg`), never a path (RFC 6266, section 4.3)."""
    saved = local_name(name)
    quoted = quote(saved, safe="")
    if quoted != saved:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{saved}"'


def _validators(found: NetworkFile) -> Validators:
    return Validators(found.manifest.sha256.hex(), found.manifest.created)


def _headers(
    validators: Validators, name: str, sources: Mapping[str, int] | None
) -> dict[str, str]:
    """The headers of any answer with the file; `sources` None: streamed from holders."""
    headers = {
        "ETag": validators.etag,
        "Last-Modified": validators.last_modified,
        "X-Content-SHA256": validators.opaque,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(name),
        "X-Content-Type-Options": "nosniff",
    }
    if sources is not None:
        headers[SOURCES] = ",".join(f"{a}={n}" for a, n in sorted(sources.items()))
    return headers


async def _read(fd: int, span: Span) -> AsyncIterator[bytes]:
    """Bytes of a span of a cached copy, a piece at a time; the descriptor is closed at
    the end."""
    try:
        position = span.start
        while position < span.end:
            piece = await asyncio.to_thread(
                os.pread, fd, min(READ_PIECE, span.end - position), position
            )
            if not piece:
                raise OSError("the cached copy is shorter than the file")
            position += len(piece)
            yield piece
    finally:
        os.close(fd)


async def _started(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`pieces` with the first one already at hand: a file no holder can give is then an
    error answer (JSON), not a response cut off after its headers."""
    first = await anext(pieces, b"")

    async def rest() -> AsyncIterator[bytes]:
        yield first
        async for piece in pieces:
            yield piece

    return rest()


# A request without conditions.
NO_CONDITIONS = Conditions(range=None, if_range=None, if_none_match=None, if_modified_since=None)


class Downloads:
    """The answers to downloads of one node's API."""

    def __init__(self, files: Callable[[], FileClient], cache: DownloadCache) -> None:
        self.files = files
        self.cache = cache

    async def answer(
        self,
        target: str,
        asked: Conditions | None = None,
        method: str = "GET",
        link: Link | None = None,
    ) -> Response:
        """The answer to a GET or HEAD of a file, with the request's conditions; with
        `link`, of the exact bytes it names (`files.links`)."""
        asked = asked or NO_CONDITIONS
        sharing = self.files()
        try:
            found = await (sharing.find_link(link) if link is not None else sharing.find(target))
        except FileError as err:
            if link is not None or err.refusal is not Refusal.NOT_FOUND:
                raise
            packed = await _packed_answer(FolderClient(sharing), target, asked, method)
            if packed is None:
                raise
            return packed
        exact = link is not None
        size = found.manifest.size
        validators = _validators(found)
        decided = _decided(asked, validators, size)
        if isinstance(decided, Response):
            return decided
        whole = decided is None
        span = decided or Span(0, size, size)
        partial = {"Content-Range": span.content_range} if not whole else {}
        status = 200 if whole else 206
        name = found.manifest.name
        if method == "HEAD":
            head = {**_headers(validators, name, {}), **partial, "Content-Length": str(span.length)}
            return Response(status_code=status, headers=head, media_type=OCTETS)
        fd = self.cache.open(validators.opaque)
        sources: dict[str, int] | None = {}
        if fd is None and whole:
            sources = await self.cache.fetch(found.manifest, cache_download(sharing, found, exact))
            fd = self.cache.open(validators.opaque)
        if fd is not None:
            pieces = _read(fd, span)
        else:
            pieces = self._from_holders(sharing, found, span, exact)
            sources = None
        reply = {
            **_headers(validators, name, sources),
            **partial,
            "Content-Length": str(span.length),
        }
        return StreamingResponse(
            await _started(pieces), status_code=status, headers=reply, media_type=OCTETS
        )

    @staticmethod
    def _from_holders(
        sharing: FileClient, found: NetworkFile, span: Span, exact: bool
    ) -> AsyncIterator[bytes]:
        if not found.holders:
            raise FileError(Refusal.NOT_FOUND, f"{found.manifest.name}: no holder serves it now")
        peers = sharing.peers
        fetch = exact_fetcher(peers, found.manifest.id) if exact else chunk_fetcher(peers)
        holders = list(found.holders)
        if found.inline is not None:
            # The bytes came with the answer: checked like fetched chunks, asked of nobody.
            fetch = serving_inline(fetch, *found.inline, found.manifest)
            holders.insert(0, found.inline[0])
        return stream_span(found.manifest, holders, fetch, span.start, span.end)


def _decided(asked: Conditions, validators: Validators, size: int) -> Response | Span | None:
    """What the conditions make of a request of a file: its 304 or 416 answer, or the span
    it asks for (None: the whole file)."""
    if not_modified(validators, asked.if_none_match, asked.if_modified_since):
        return Response(
            status_code=304,
            headers={"ETag": validators.etag, "Last-Modified": validators.last_modified},
        )
    if not if_range_holds(asked.if_range, validators):
        return None
    try:
        return requested_span(asked.range, size)
    except RangeNotSatisfiable as err:
        refused = error_response(416, "range_not_satisfiable", err.message)
        refused.headers["Content-Range"] = err.content_range
        return refused


async def _packed_answer(
    folders: FolderClient, target: str, asked: Conditions, method: str
) -> Response | None:
    """The answer to a GET or HEAD of a file inside a folder's pack (`NAME/sub/file`), which
    has no file of its own: its bytes cut from the pack, checked; None when no folder holds
    such a file. A packed file is small (`files.packs.SMALL_FILE`): sliced in memory."""
    inside = await folders.find_path(target)
    if inside is None or inside[1].pack is None:
        return None  # a file of its own is found as a file; a folder's path is no file
    folder, entry = inside
    pack = await folders.find_pack(folder, entry.pack or 0)
    validators = Validators(entry.sha256.hex(), pack.manifest.created)
    decided = _decided(asked, validators, entry.size)
    if isinstance(decided, Response):
        return decided
    span = decided or Span(0, entry.size, entry.size)
    partial = {"Content-Range": span.content_range} if decided is not None else {}
    status = 200 if decided is None else 206
    data = b""
    served: dict[str, int] = {}
    if method != "HEAD":
        data, served = await folders.packed_bytes(folder, entry, pack)
    headers = {**_headers(validators, target, served), **partial}
    if method == "HEAD":
        headers["Content-Length"] = str(span.length)
    return Response(data[span.start : span.end], status, headers, media_type=OCTETS)
