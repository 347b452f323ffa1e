"""Uploads through the REST API, streamed on to the name's owner as they arrive
(`FileClient.put_stream`): the entry node writes nothing of them to its disk, and memory
holds a few chunks whatever their size, so an upload through a node whose own disk is full
is stored all the same when the owner has room.

- `PUT /api/v1/files/{name}`: the body is the file; its Content-Length is the size the put
  promises (411 without one).
- `POST /api/v1/files`, multipart: a form whose `size` field comes before its `file` part
  streams the same way, read with python-multipart's push parser. Any other form (no `size`,
  or `size` after the file: a form cannot be read twice) is read as before: the multipart
  parser spools the file, it is copied to a named file in the node's `uploads/` and put
  from there (a put reads a path), which also serves the seed's `/upload_file`.

Every user of an API node puts through the one peer it is, and an owner takes only so many
puts from one peer at once, so the node runs a few puts at a time and queues the rest, in
the order they came, with a bound on how many one client may have waiting: a crowd waits
its turn instead of being refused, and a client that floods the queue is told 503 with
Retry-After for the uploads past its share. A streamed upload holds its turn while its body
arrives.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import tempfile
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request, UploadFile
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.shapes import manifest_json
from chordshare.files.folders import check_plain_name
from chordshare.files.messages import PutOutcome
from chordshare.sharing.client import FileClient
from chordshare.sharing.stream_put import BodyLengthError

COPY_PIECE = 1024 * 1024
# Half of what an owner takes from one peer at once (`StreamLimits.puts_per_peer`): the
# rest is room for this node's own repair copies and for other clients on its host.
PUTS_AT_ONCE = 4
WAITING_PER_CLIENT = 64  # uploads one client may have queued behind those running
WAITING_IN_ALL = 256
LONGEST_WAIT = 120.0  # seconds an upload may wait for its turn before it is told 503
# What a form may hold before its file part and still stream: its fields are a name, a
# word and a number; a longer one is read the staged way.
FORM_HEAD = 64 * 1024

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


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


def _client_of(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _answer(outcome: PutOutcome) -> JSONResponse:
    """201 with what was stored, 200 when the name held these bytes already."""
    body = {**manifest_json(outcome.manifest), "unchanged": outcome.unchanged}
    return JSONResponse(body, status_code=200 if outcome.unchanged else 201)


class Uploads:
    def __init__(
        self, folder: Path, files: Callable[[], FileClient], queue: UploadQueue | None = None
    ) -> None:
        self.folder = folder
        self.files = files
        self.queue = queue or UploadQueue()

    async def store(
        self,
        upload: UploadFile,
        name: str,
        replace: bool,
        client: str = "",
        size: object = None,
    ) -> JSONResponse:
        """Put a spooled upload under `name` (empty: the uploaded file's), staged in
        `uploads/`; `size`: the form's field, the length it says the file has."""
        chosen = check_plain_name(name or upload.filename or "")
        if size not in (None, ""):
            if not (isinstance(size, str) and size.isascii() and size.isdigit()):
                raise ApiError(400, "invalid_request", f"size {size!r} is not a number of bytes")
            if upload.size is not None and upload.size != int(size):
                raise ApiError(
                    400, "wrong_length", f"the file {chosen!r} has {upload.size} bytes, not {size}"
                )
        fd, tmp = tempfile.mkstemp(dir=self.folder)
        os.close(fd)
        path = Path(tmp)
        try:
            await asyncio.to_thread(_copy_upload, upload.file, path)
            async with self.queue.turn(client):
                outcome = await self.files().put(path, chosen, replace=replace)
        finally:
            await asyncio.to_thread(path.unlink, True)
        return _answer(outcome)

    async def stream_body(self, request: Request, name: str, replace: bool) -> JSONResponse:
        """Put a request's body under `name`, its Content-Length the size it promises."""
        length = request.headers.get("content-length")
        if length is None:
            raise ApiError(
                411,
                "length_required",
                "an upload's body needs a Content-Length: its size goes ahead of its bytes",
            )
        if not (length.isascii() and length.isdigit()):
            raise ApiError(400, "invalid_request", f"Content-Length {length!r} is no length")
        return await self._streamed(
            _client_of(request), name, int(length), request.stream(), replace
        )

    async def stream_form(self, request: Request, otherwise: Handler) -> Response:
        """Stream a multipart upload whose `size` comes before its file; leave any other to
        `otherwise`, which reads the form from its start as before."""
        kind, options = parse_options_header(request.headers.get("content-type"))
        if kind != b"multipart/form-data" or b"boundary" not in options:
            return await otherwise(request)
        charset = options.get(b"charset", b"utf-8").decode("latin-1")
        try:
            form = FormReader(request.receive, options[b"boundary"], codecs.lookup(charset).name)
        except (FormParserError, LookupError):
            return await otherwise(request)
        try:
            streams = await form.head()
        except ClientDisconnect:
            raise ApiError(400, "incomplete_body", "the upload was cut off") from None
        if not streams:
            return await otherwise(Request(request.scope, form.replay()))
        size, name = form.fields["size"], form.fields.get("name", "")
        replace = form.fields.get("replace", "") or "false"  # empty is missing, as FastAPI has it
        if not (size.isascii() and size.isdigit()):
            raise ApiError(400, "invalid_request", f"size {size!r} is not a number of bytes")
        if replace not in ("true", "false"):
            raise ApiError(400, "invalid_request", f"replace {replace!r} is not true or false")
        chosen = name or form.filename
        return await self._streamed(
            _client_of(request), chosen, int(size), form.file_bytes(), replace == "true"
        )

    async def _streamed(
        self, client: str, name: str, size: int, data: AsyncIterable[bytes], replace: bool
    ) -> JSONResponse:
        chosen = check_plain_name(name)
        async with self.queue.turn(client):
            try:
                outcome = await self.files().put_stream(chosen, size, data, replace)
            except BodyLengthError as err:
                raise ApiError(400, "wrong_length", f"{err}: nothing is stored") from None
            except ClientDisconnect:
                raise ApiError(
                    400,
                    "incomplete_body",
                    f"the upload of {chosen!r} was cut off: nothing is stored",
                ) from None
            except FormParserError as err:
                raise ApiError(400, "invalid_request", f"a malformed form: {err}") from None
        return _answer(outcome)


class FormReader:
    """A multipart body read as it arrives (python-multipart's push parser): the fields up
    to the part named `file` (`head`), then that part's bytes (`file_bytes`). The body read
    by `head` is kept, so that a form that cannot stream can be read again (`replay`)."""

    def __init__(self, receive: Receive, boundary: bytes, charset: str) -> None:
        self.receive = receive
        self.charset = charset
        self.fields: dict[str, str] = {}
        self.filename = ""
        self.read: list[bytes] = []  # the body so far, until the file's bytes go on
        self.ended = False  # the body's last message is in
        self.closed = False  # the form's closing boundary is in
        self._events: deque[tuple[str, bytes]] = deque()
        self._header = [b"", b""]
        self._disposition = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": lambda: self._events.append(("begin", b"")),
                "on_header_field": lambda d, s, e: self._add_header(0, d[s:e]),
                "on_header_value": lambda d, s, e: self._add_header(1, d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": lambda d, s, e: self._events.append(("data", d[s:e])),
                "on_part_end": lambda: self._events.append(("end", b"")),
                "on_end": self._closed,
            },
        )

    def _add_header(self, which: int, text: bytes) -> None:
        self._header[which] += text

    def _header_end(self) -> None:
        if self._header[0].lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = [b"", b""]

    def _headers_finished(self) -> None:
        self._events.append(("headers", self._disposition))
        self._disposition = b""

    def _closed(self) -> None:
        self.closed = True

    async def _more(self) -> bytes | None:
        """The body's next bytes; None at its end."""
        while not self.ended:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            self.ended = not message.get("more_body", False)
            piece: bytes = message.get("body", b"")
            if piece:
                return piece
        return None

    async def head(self) -> bool:
        """Read up to the bytes of the part named `file`: True there when a `size` came
        before it; False for a form that cannot stream (read again with `replay`)."""
        part: str | None = None
        value = bytearray()
        while True:
            while self._events:
                kind, data = self._events.popleft()
                if kind == "headers":
                    _, options = parse_options_header(data)
                    try:
                        part = options.get(b"name", b"").decode(self.charset)
                        filename = options.get(b"filename")
                        if part == "file":
                            self.filename = filename.decode(self.charset) if filename else ""
                            return filename is not None and bool(self.fields.get("size"))
                    except UnicodeDecodeError:
                        return False
                    value.clear()
                elif kind == "data":
                    value += data
                elif kind == "end" and part is not None:
                    try:
                        self.fields[part] = value.decode(self.charset)
                    except UnicodeDecodeError:
                        return False
                    part = None
            if self.closed or sum(map(len, self.read)) > FORM_HEAD:
                return False
            piece = await self._more()
            if piece is None:
                return False
            self.read.append(piece)
            try:
                self._parser.write(piece)
            except FormParserError:
                return False

    def replay(self) -> Receive:
        """The body's messages from its start: what `head` read, then the rest."""
        first: Message = {
            "type": "http.request",
            "body": b"".join(self.read),
            "more_body": not self.ended,
        }
        given = False

        async def receive() -> Message:
            nonlocal given
            if not given:
                given = True
                return first
            return await self.receive()

        return receive

    async def file_bytes(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive, once the rest of the form is in: it may
        hold no other part (every field goes before the file), and must close."""
        self.read.clear()
        in_file = True
        while True:
            while self._events:
                kind, data = self._events.popleft()
                if in_file and kind == "data":
                    yield data
                elif in_file and kind == "end":
                    in_file = False
                else:
                    raise ApiError(
                        400,
                        "invalid_request",
                        "a form that gives `size` sends every field before its `file`",
                    )
            if not in_file and self.closed:
                return
            piece = await self._more()
            if piece is None:
                raise ApiError(400, "incomplete_body", "the form ended before its closing line")
            self._parser.write(piece)


class _StreamsForms(APIRoute):
    """A multipart upload's route: a form that can stream is put from here, any other is
    left to FastAPI as before (read from the start again). Below `GuardFirst` in a route's
    classes, so the token is checked before a byte of the body is read."""

    uploads: Uploads

    def get_route_handler(self) -> Handler:
        parse = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await self.uploads.stream_form(request, parse)

        return handle


def form_route(uploads: Uploads) -> type[APIRoute]:
    """The route class of an operation that takes a multipart upload through `uploads`."""

    class FormRoute(ApiRoute, _StreamsForms):
        pass

    FormRoute.uploads = uploads
    return FormRoute
