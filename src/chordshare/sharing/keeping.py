"""Copies a node keeps of the files fetched through it: a REST download fills its download
cache as it serves, and a client (`chordshare get --node`, the console) that got a file
through the node asks it afterwards to keep one (the Files call KeepFile).

A keep names a version (a name and its manifest's id); the node looks it up through the
ring itself and fetches it from its holders like a REST download would, under its download
cap, into its download cache, which announces it as one more source. It answers at once
and fetches in the background, a few keeps at a time: one asked beyond that is dropped
("not now"), as is any asked of a node that caches nothing. Each costs the node one
download of the file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from chordshare.files.links import Link
from chordshare.files.messages import FileError, KeepOutcome, Refusal
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.download_cache import DownloadCache
from chordshare.transport.base import PeerError

log = logging.getLogger(__name__)

MAX_KEEPS = 2  # keeps looked up or fetched at once; more are dropped

Download = Callable[[Path], Awaitable[dict[str, int]]]
Starter = Callable[[Coroutine[Any, Any, None], str], object]


def cache_download(sharing: FileClient, found: NetworkFile, exact: bool) -> Download:
    """What fills the download cache with `found` (`DownloadCache.fetch`): a get of it from
    its holders; `exact`: the chunks of found's very manifest, not of its sha256."""

    async def download(path: Path) -> dict[str, int]:
        return (await sharing.get(found.manifest.name, path, found=found, exact=exact)).sources

    return download


class Keeper:
    """Keeps copies for clients in `cache`. `files` is a client of the network as this
    node's users' transfers reach it (paced by its caps); `stored(name, manifest_id)` says
    whether the node stores that version itself; `start` runs a fetch as a node task."""

    def __init__(
        self,
        cache: DownloadCache,
        files: Callable[[], FileClient],
        stored: Callable[[str, bytes], Awaitable[bool]],
        start: Starter,
        most: int = MAX_KEEPS,
    ) -> None:
        self.cache = cache
        self.files = files
        self.stored = stored
        self.start = start
        self.most = most
        self.under_way = 0  # keeps looked up or fetched now
        self.kept = 0  # keeps that ended with the file in the cache

    async def keep(self, name: str, manifest_id: bytes) -> KeepOutcome:
        """Start keeping the version of name with that manifest, if the node is to."""
        if self.cache.limit == 0:
            return KeepOutcome.OFF
        if self.under_way >= self.most:
            return KeepOutcome.NOT_NOW
        self.under_way += 1
        fetching = False
        try:
            if await self.stored(name, manifest_id):
                return KeepOutcome.HELD
            sharing = self.files()
            try:
                found, exact = await _find(sharing, name, manifest_id)
            except (FileError, PeerError) as err:
                log.debug("not keeping %r: %s", name, err)
                return KeepOutcome.UNKNOWN
            if found is None or not found.holders:
                return KeepOutcome.UNKNOWN
            if self.cache.keeps(found.manifest):
                return KeepOutcome.HELD
            if found.manifest.size > self.cache.limit:
                return KeepOutcome.OFF
            self.start(self._fetch(found, cache_download(sharing, found, exact)), f"keep {name}")
            fetching = True
            return KeepOutcome.STARTED
        finally:
            if not fetching:
                self.under_way -= 1

    async def _fetch(self, found: NetworkFile, download: Download) -> None:
        try:
            if await self.cache.fetch(found.manifest, download) is not None:
                self.kept += 1
        except Exception as err:  # a keep that fails costs nothing more; never the node's
            log.info("keeping %r failed: %s", found.manifest.name, err)
        finally:
            self.under_way -= 1


async def _find(
    sharing: FileClient, name: str, manifest_id: bytes
) -> tuple[NetworkFile | None, bool]:
    """Where that version of name can be had, and whether only by its manifest (a version
    kept after a replace); (None, False) when nowhere."""
    newest = None
    with contextlib.suppress(FileError):
        newest = await sharing.find(name)
    if newest is not None and newest.manifest.id == manifest_id:
        return newest, False
    try:
        return await sharing.find_link(Link(manifest_id, name, ())), True
    except FileError as err:
        if err.refusal is not Refusal.NOT_FOUND:
            raise
        return None, False
