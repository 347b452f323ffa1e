"""Folders in the REST API: a folder's manifest (its files), the folder as a zip streamed
while its files are fetched, an upload of a folder (each file a form part named by its
path, as a browser's directory picker sends them), and a removal."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import content_disposition
from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_inputs import FolderPath, NewFolderPath
from chordshare.faces.api_models import FolderInfo, FolderStored
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.shapes import folder_json, folder_records, with_folders
from chordshare.files.folders import (
    MAX_ENTRIES,
    Folder,
    FolderEntry,
    check_folder_name,
    check_path,
    folder_name,
)
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import SEPARATOR, local_name
from chordshare.sharing.client import FileClient
from chordshare.sharing.folder_client import FolderClient
from chordshare.sharing.folder_packs import read_entry

if TYPE_CHECKING:
    from typing_extensions import Buffer

READ_BLOCK = 1 << 20
AHEAD = 32  # files of a zip fetched while an earlier one is sent
AHEAD_BYTES = 256 << 20  # and at most this many bytes of them staged at once


async def shown_with_folders(files: FileClient, listed: dict[str, Any]) -> dict[str, Any]:
    """A listing with each folder's manifest shown as its folder (`shapes.with_folders`)."""
    names = folder_records(listed["files"])
    if names:
        summaries = await FolderClient(files).summaries(names)
        listed["files"] = with_folders(listed["files"], summaries)
    return listed


def folder_routes(access: NodeAccess) -> APIRouter:
    router = APIRouter(route_class=ApiRoute)
    doc, reads, writes = access.doc, access.reads, access.writes

    def folders() -> FolderClient:
        return FolderClient(access.files())

    async def found(name: str) -> tuple[FolderClient, Folder]:
        client = folders()
        folder = await client.find(folder_name(name))
        if folder is None:
            raise ApiError(404, "not_found", f"no folder named {name!r} in the network")
        return client, folder

    @router.get(
        "/api/v1/folders/{name:path}",
        summary="A folder: its files and folders (format=zip: the folder as a zip, streamed)",
        response_model=FolderInfo,
        **doc(reads, 400, 404, 409, 502, 503),
    )
    async def get_folder(
        name: FolderPath, format: Annotated[Literal["json", "zip"], Query()] = "json"
    ) -> Any:
        client, folder = await found(name)
        if format == "json":
            return folder_json(folder)
        return zip_response(client, folder)

    @router.post(
        "/api/v1/folders/{name:path}",
        status_code=201,
        summary="Upload a folder: multipart, one `file` part per file, its filename the "
        "file's path in the folder (a directory picker's relative paths); `replace=true` "
        "replaces a folder of that name",
        response_model=FolderStored,
        **doc(writes, 400, 409, 502, 503, 507),
    )
    async def upload_folder(
        name: NewFolderPath, request: Request, replace: Annotated[bool, Query()] = False
    ) -> dict[str, Any]:
        check_folder_name(name)
        # Starlette's default of 1,000 parts would cut a folder short of its own limit.
        form = await request.form(max_files=MAX_ENTRIES, max_fields=MAX_ENTRIES)
        parts = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
        if not parts:
            raise ApiError(400, "invalid_request", "a folder upload needs `file` parts")
        with tempfile.TemporaryDirectory(prefix="chordshare-upload-") as scratch:
            root = Path(scratch) / "folder"
            root.mkdir()
            for part in parts:
                await _spool(part, root)
            put = await folders().put(root, name, replace)
        return {**folder_json(put.folder), "unchanged": put.unchanged, "removed": put.removed}

    @router.delete(
        "/api/v1/folders/{name:path}",
        status_code=204,
        summary="Remove a folder and every file in it",
        response_class=Response,
        **doc(writes, 400, 404, 409, 502, 503),
    )
    async def delete_folder(name: FolderPath) -> Response:
        try:
            await folders().remove(folder_name(name))
        except FileError as err:
            if err.refusal is Refusal.NOT_FOUND:
                raise ApiError(404, "not_found", err.message) from None
            raise
        return Response(status_code=204)

    return router


def zip_response(client: FolderClient, folder: Folder) -> StreamingResponse:
    """The folder as a zip streamed while its files are fetched, saved as LAST-PART.zip."""
    top = local_name(folder.name)
    return StreamingResponse(
        _zipped(client, folder, top),
        media_type="application/zip",
        headers={"Content-Disposition": content_disposition(top + ".zip")},
    )


async def _spool(part: UploadFile, root: Path) -> None:
    """One uploaded file into the scratch tree, at its checked path (never outside it)."""
    path = check_path((part.filename or "").replace("\\", SEPARATOR))
    target = root.joinpath(*path.split(SEPARATOR))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            while block := await part.read(READ_BLOCK):
                await asyncio.to_thread(out.write, block)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise ApiError(
            400, "invalid_request", f"{path!r}: two files of one path, or a file and a folder"
        ) from None


class _Spout:
    """What zipfile writes, kept until the response sends it (a stream: no seeking)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: Buffer) -> int:
        data = bytes(data)
        self.pieces.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        taken, self.pieces = b"".join(self.pieces), []
        return taken


async def _zipped(client: FolderClient, folder: Folder, top: str) -> AsyncIterator[bytes]:
    """The folder as a zip under `top/`, in the order of the folder's entries, each file
    checked against the folder's manifest and sent on as it is read (stored, not
    compressed; zip64 where sizes need it). A file of its own is fetched alone
    (`FolderClient.fetch`); a pack is fetched whole once and its files cut out of it, and
    dropped once the zip is past its last file. The next files and packs are fetched while
    one is sent (up to `AHEAD` files and `AHEAD_BYTES` staged)."""
    spout = _Spout()
    stamp = time.localtime()[:6]
    files = list(enumerate(folder.files))
    ahead: dict[int, asyncio.Future[Path]] = {}  # files of their own, by index
    packs: dict[int, asyncio.Future[Path]] = {}  # packs, until the zip is past them
    last = {entry.pack: index for index, entry in files if entry.pack is not None}
    opened: dict[int, int] = {}  # the descriptor of each pack being cut
    with (
        tempfile.TemporaryDirectory(prefix="chordshare-zip-") as scratch,
        zipfile.ZipFile(spout, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):

        async def fetched(index: int, entry: FolderEntry) -> Path:
            local = Path(scratch) / f"{index}"
            await client.fetch(folder, entry, local)
            return local

        def fetch_ahead(start: int) -> None:
            staged = sum(files[i][1].size for i in ahead)
            staged += sum(folder.packs[p].size for p in packs)
            for index, entry in files[start : start + AHEAD]:
                if index in ahead or entry.pack in packs:
                    continue
                size = entry.size if entry.pack is None else folder.packs[entry.pack].size
                if (ahead or packs) and staged + size > AHEAD_BYTES:
                    break
                if entry.pack is None:
                    ahead[index] = asyncio.ensure_future(fetched(index, entry))
                else:
                    pack = client.fetch_pack(folder, entry.pack, Path(scratch))
                    packs[entry.pack] = asyncio.ensure_future(pack)
                staged += size

        async def cut(index: int, pack: int, entry: FolderEntry) -> bytes:
            if pack not in opened:
                opened[pack] = os.open(await packs[pack], os.O_RDONLY)
            data = await asyncio.to_thread(read_entry, opened[pack], entry)
            if index == last[pack]:
                os.close(opened.pop(pack))
                (await packs.pop(pack)).unlink()
            return data

        try:
            for entry in folder.entries:
                if entry.kind == "dir":
                    info = zipfile.ZipInfo(f"{top}/{entry.path}/", stamp)
                    info.external_attr = (stat.S_IFDIR | entry.mode) << 16 | 0x10
                    archive.writestr(info, b"")
                    yield spout.take()
            for index, entry in files:
                fetch_ahead(index)
                info = zipfile.ZipInfo(f"{top}/{entry.path}", stamp)
                info.external_attr = (stat.S_IFREG | entry.mode) << 16
                info.file_size = entry.size
                if entry.pack is not None:
                    data = await cut(index, entry.pack, entry)
                    with archive.open(info, "w") as sink:
                        sink.write(data)
                    yield spout.take()
                    continue
                local = await ahead.pop(index)
                with local.open("rb") as source, archive.open(info, "w") as sink:
                    while block := await asyncio.to_thread(source.read, READ_BLOCK):
                        sink.write(block)
                        yield spout.take()
                local.unlink()
                yield spout.take()
        finally:
            for fd in opened.values():
                os.close(fd)
            tasks = [*ahead.values(), *packs.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    yield spout.take()
