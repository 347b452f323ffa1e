"""Uploads through the REST API: the multipart parser has spooled the file to disk; it is
copied to a named file in the node's `uploads/` (a put reads a path), put to the network,
and removed, memory flat whatever its size."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from fastapi.responses import JSONResponse

from chordshare.faces.shapes import manifest_json
from chordshare.files.names import check_new_name
from chordshare.sharing.client import FileClient

COPY_PIECE = 1024 * 1024


def _copy_upload(source: Any, target: Path) -> int:
    """Copy an upload to a named file, a MiB at a time."""
    size = 0
    with target.open("wb") as out:
        while piece := source.read(COPY_PIECE):
            out.write(piece)
            size += len(piece)
    return size


class Uploads:
    def __init__(self, folder: Path, files: Callable[[], FileClient]) -> None:
        self.folder = folder
        self.files = files

    async def store(self, upload: UploadFile, name: str, replace: bool) -> JSONResponse:
        """Put an upload under `name` (empty: the uploaded file's): 201 with what was
        stored, 200 when the name held these bytes already."""
        chosen = check_new_name(name or upload.filename or "")
        fd, tmp = tempfile.mkstemp(dir=self.folder)
        os.close(fd)
        path = Path(tmp)
        try:
            await asyncio.to_thread(_copy_upload, upload.file, path)
            outcome = await self.files().put(path, chosen, replace=replace)
        finally:
            await asyncio.to_thread(path.unlink, True)
        body = {**manifest_json(outcome.manifest), "unchanged": outcome.unchanged}
        return JSONResponse(body, status_code=200 if outcome.unchanged else 201)
