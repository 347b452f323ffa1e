"""Uploads through the REST API: the multipart parser has spooled the file to disk; it is
copied to a named file in the node's `uploads/` (a put reads a path), put to the network,
and removed, memory flat whatever its size.

Every user of an API node puts through the one peer it is, and an owner takes only so many
puts from one peer at once, so the node runs a few puts at a time and queues the rest, in
the order they came, with a bound on how many one client may have waiting: a crowd waits
its turn instead of being refused, and a client that floods the queue is told 503 with
Retry-After for the uploads past its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from fastapi.responses import JSONResponse

from chordshare.faces.api_errors import ApiError
from chordshare.faces.shapes import manifest_json
from chordshare.files.names import check_new_name
from chordshare.sharing.client import FileClient

COPY_PIECE = 1024 * 1024
# Half of what an owner takes from one peer at once (`StreamLimits.puts_per_peer`): the
# rest is room for this node's own repair copies and for other clients on its host.
PUTS_AT_ONCE = 4
WAITING_PER_CLIENT = 64  # uploads one client may have queued behind those running
WAITING_IN_ALL = 256
LONGEST_WAIT = 120.0  # seconds an upload may wait for its turn before it is told 503


class UploadQueue:
    """Runs at most `at_once` uploads' puts at a time; the others wait their turn in the
    order they came, up to `per_client` waiting from one client and `in_all` from all."""

    def __init__(
        self,
        at_once: int = PUTS_AT_ONCE,
        per_client: int = WAITING_PER_CLIENT,
        in_all: int = WAITING_IN_ALL,
        longest_wait: float = LONGEST_WAIT,
    ) -> None:
        self._turns = asyncio.Semaphore(at_once)
        self._waiting: Counter[str] = Counter()
        self.per_client, self.in_all, self.longest_wait = per_client, in_all, longest_wait

    @contextlib.asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        if self._waiting[client] >= self.per_client or self._waiting.total() >= self.in_all:
            raise ApiError(
                503, "busy", "this node has as many uploads waiting as it queues; try again"
            )
        self._waiting[client] += 1
        try:
            async with asyncio.timeout(self.longest_wait):
                await self._turns.acquire()
        except TimeoutError:
            raise ApiError(
                503, "busy", f"no turn for this upload in {self.longest_wait:g} s; try again"
            ) from None
        finally:
            self._waiting[client] -= 1
            if not self._waiting[client]:
                del self._waiting[client]
        try:
            yield
        finally:
            self._turns.release()


def _copy_upload(source: Any, target: Path) -> int:
    """Copy an upload to a named file, a MiB at a time."""
    size = 0
    with target.open("wb") as out:
        while piece := source.read(COPY_PIECE):
            out.write(piece)
            size += len(piece)
    return size


class Uploads:
    def __init__(
        self, folder: Path, files: Callable[[], FileClient], queue: UploadQueue | None = None
    ) -> None:
        self.folder = folder
        self.files = files
        self.queue = queue or UploadQueue()

    async def store(
        self, upload: UploadFile, name: str, replace: bool, client: str = ""
    ) -> JSONResponse:
        """Put an upload under `name` (empty: the uploaded file's): 201 with what was
        stored, 200 when the name held these bytes already."""
        chosen = check_new_name(name or upload.filename or "")
        fd, tmp = tempfile.mkstemp(dir=self.folder)
        os.close(fd)
        path = Path(tmp)
        try:
            await asyncio.to_thread(_copy_upload, upload.file, path)
            async with self.queue.turn(client):
                outcome = await self.files().put(path, chosen, replace=replace)
        finally:
            await asyncio.to_thread(path.unlink, True)
        body = {**manifest_json(outcome.manifest), "unchanged": outcome.unchanged}
        return JSONResponse(body, status_code=200 if outcome.unchanged else 201)
