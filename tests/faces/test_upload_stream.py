"""Uploads streamed on to the owner of their name (`PUT /api/v1/files/{name}`, and a form
whose `size` comes before its file): the node they enter through stores nothing of them,
not even with its disk full, memory holds a few chunks of a 64 MiB body, a body that is not
the length it promised is refused with nothing stored, and a name already held answers as
a staged upload does (409, 200 unchanged, or replaced)."""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import io
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apinet import ApiNetwork, stored
from waiting import wait_until

from chordshare.faces import api_upload
from chordshare.faces.api import create_app
from chordshare.files.messages import PutHeader
from chordshare.files.placement import file_key
from chordshare.sharing.chunking import chunk_size_for
from chordshare.sharing.peer import SharingPeer
from chordshare.transport.limits import StreamLimits

MIB = 1024 * 1024
PIECE = 64 * 1024  # what an HTTP client sends at a time


def content(size: int, seed: str) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def piece_of(seed: str, at: int, size: int) -> bytes:
    return hashlib.shake_256(f"{seed}{at}".encode()).digest(min(PIECE, size - at))


async def pieces(size: int, seed: str) -> AsyncIterator[bytes]:
    """`size` bytes of a seed's pattern, made a piece at a time as they are sent."""
    for at in range(0, size, PIECE):
        yield piece_of(seed, at, size)


def digest_of(size: int, seed: str) -> str:
    whole = hashlib.sha256()
    for at in range(0, size, PIECE):
        whole.update(piece_of(seed, at, size))
    return whole.hexdigest()


def owner_of(peers: list[SharingPeer], name: str) -> SharingPeer:
    space = peers[0].server.node.space
    [owner] = [p for p in peers if p.server.node.state.owns(file_key(space, name))]
    return owner


def holders_of(peers: list[SharingPeer], name: str) -> list[SharingPeer]:
    """The owner of name and the successors that keep its copies (three holders)."""
    owner = owner_of(peers, name)
    after = [s.address for s in owner.server.node.state.successors[:2]]
    return [owner, *(p for p in peers if p.server.node.me.address in after)]


def name_away_from(peers: list[SharingPeer], entry: SharingPeer, stem: str) -> str:
    """A name none of whose holders is `entry`."""
    for i in range(1000):
        name = f"{stem}-{i}.bin"
        if entry not in holders_of(peers, name):
            return name
    raise AssertionError("every name lands on the entry node")


def name_owned_elsewhere(peers: list[SharingPeer], entry: SharingPeer, stem: str) -> str:
    """A name `entry` does not own: its put leaves through gRPC."""
    return next(
        f"{stem}-{i}.bin" for i in range(1000) if owner_of(peers, f"{stem}-{i}.bin") is not entry
    )


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def disk_full(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Every file opened for writing under `root` fails as a full disk does."""
    real_open, real_os_open = builtins.open, os.open
    root = root.resolve()

    def under(path: Any) -> bool:
        return not isinstance(path, int) and Path(os.fspath(path)).resolve().is_relative_to(root)

    def full(path: Any) -> OSError:
        return OSError(errno.ENOSPC, "No space left on device", os.fspath(path))

    def os_open(path: Any, flags: int, mode: int = 0o777, **options: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            raise full(path)
        return real_os_open(path, flags, mode, **options)

    def open_(file: Any, mode: str = "r", *args: Any, **options: Any) -> Any:
        if any(c in mode for c in "wax+") and under(file):
            raise full(file)
        return real_open(file, mode, *args, **options)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def holdings(peers: list[SharingPeer]) -> list[tuple[list[str], list[bytes], int]]:
    """What each peer stores: its names, its chunks, and the bytes it has reserved."""
    return [
        (
            [m.name for m in p.store.manifests()],
            sorted(p.store.chunks.digests()),
            p.store.used_bytes() + p.store._reserved,
        )
        for p in peers
    ]


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


class PutWatch:
    """Every client's put a peer takes, with its header, and whether the entry node's
    `uploads/` held anything while its chunks arrived."""

    def __init__(self, owner: SharingPeer, uploads: Path) -> None:
        self.headers: list[PutHeader] = []
        self.staged: list[str] = []
        taking = owner.service.put_file

        async def put_file(header: PutHeader, chunks: Any, trailer: Any = None) -> Any:
            if header.replica:
                return await taking(header, chunks, trailer)
            self.headers.append(header)

            async def watched() -> AsyncIterator[tuple[int, bytes]]:
                async for index, data in chunks:
                    self.staged += await asyncio.to_thread(os.listdir, uploads)
                    yield index, data

            return await taking(header, watched(), trailer)

        owner.service.put_file = put_file  # type: ignore[method-assign]


async def test_a_node_with_a_full_disk_streams_an_upload_on_to_the_owner(
    net: ApiNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = await net.ring(4)
    entry = ring[0]
    name = name_away_from(ring, entry, "through")
    data = content(6 * MIB + 123, name)
    async with await net.api(entry) as http, await net.api(ring[1]) as other:
        root = entry.settings.data_dir
        before = files_under(root)
        disk_full(monkeypatch, root)
        staged = await http.post("/api/v1/files", files={"file": (name, data)})
        # The staged way needs this disk: refused (this is what the full disk does).
        assert staged.status_code == 507, staged.text
        created = await http.put(f"/api/v1/files/{name}", content=data)
        assert created.status_code == 201, created.text
        assert created.json()["sha256"] == hashlib.sha256(data).hexdigest()
        form = name_away_from(ring, entry, "form")
        streamed = await http.post(
            "/api/v1/files",
            data={"size": str(len(data)), "name": form},
            files={"file": ("x", data)},
        )
        assert streamed.status_code == 201, streamed.text
        monkeypatch.undo()
        assert files_under(root) == before  # nothing written, not even staged
        for put in (name, form):
            got = await other.get(f"/api/v1/files/{put}")
            assert got.status_code == 200 and got.content == data


async def test_a_64_mib_put_holds_a_few_chunks_in_memory(net: ApiNetwork) -> None:
    ring = await net.ring(2)
    size = 64 * MIB
    name = next(f"big-{i}.bin" for i in range(100) if owner_of(ring, f"big-{i}.bin") is ring[1])
    chunk = chunk_size_for(size)
    async with await net.api(ring[0]) as http:
        http.timeout = httpx.Timeout(120)
        tracemalloc.start()
        try:
            created = await http.put(
                f"/api/v1/files/{name}",
                content=pieces(size, "big"),
                headers={"Content-Length": str(size)},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert created.status_code == 201, created.text
    assert created.json()["sha256"] == digest_of(size, "big")
    # Client, entry node and owner share this process, each side holding a few chunks
    # (the entry node: the one being cut, the one being hashed, the one gRPC sends; the
    # owner: the chunks its pipeline stores at once), and more wait in flight when the
    # machine is busy. A quarter of the body: one buffered whole would take all of it.
    assert peak < size // 4, f"peak Python memory {peak / MIB:.1f} MiB, chunks of {chunk}"


@pytest.mark.parametrize("size", [40_000, 3 * MIB + 5])
async def test_a_body_not_as_long_as_it_says_is_refused_and_nothing_is_stored(
    net: ApiNetwork, size: int
) -> None:
    ring = await net.ring(3)
    entry = ring[0]
    name = name_owned_elsewhere(ring, entry, "length")
    data = content(size, name)
    empty = holdings(ring)
    app = create_app(entry, lambda: None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as asgi:
        for said in (size + 1, size - 1):  # the body is shorter, then longer, than it says
            refused = await asgi.put(
                f"/api/v1/files/{name}", content=data, headers={"Content-Length": str(said)}
            )
            assert refused.status_code == 400, refused.text
            assert error_code(refused) == "wrong_length"
    async with await net.api(entry) as http:
        for said in (size + 1, size - 1):  # a form whose `size` says otherwise
            refused = await http.post(
                "/api/v1/files", data={"size": str(said)}, files={"file": (name, data)}
            )
            assert refused.status_code == 400, refused.text
            assert error_code(refused) == "wrong_length"

        async def chunked() -> AsyncIterator[bytes]:
            yield data

        unsized = await http.put(f"/api/v1/files/{name}", content=chunked())
        assert unsized.status_code == 411 and error_code(unsized) == "length_required"
    await wait_until(lambda: holdings(ring) == empty, 10, "every holder to keep nothing")


async def test_a_held_name_is_refused_replaced_or_found_unchanged(net: ApiNetwork) -> None:
    ring = await net.ring(3)
    entry = ring[0]
    name = name_owned_elsewhere(ring, entry, "held")
    owner = owner_of(ring, name)
    first, second = content(3 * MIB, "first"), content(3 * MIB, "second")
    watch = PutWatch(owner, entry.settings.data_dir / "uploads")
    sent = entry.peers.bytes.sent  # type: ignore[union-attr]  # gRPC peers: bytes per peer
    to_owner = owner.server.node.me.address
    async with await net.api(entry) as http:
        created = await http.put(f"/api/v1/files/{name}", content=first)
        assert created.status_code == 201, created.text
        assert [h.manifest_last for h in watch.headers] == [True]

        # Other bytes, or another length, without replace: refused, and none of it sent.
        before = sent[to_owner]
        for other in (second, second + b"!"):
            clash = await http.put(f"/api/v1/files/{name}", content=other)
            assert clash.status_code == 409 and error_code(clash) == "already_exists"
        # The same bytes: found unchanged, and the owner is sent none of them either.
        again = await http.put(f"/api/v1/files/{name}", content=first)
        assert again.status_code == 200 and again.json()["unchanged"], again.text
        assert again.json()["created"] == created.json()["created"]
        assert sent[to_owner] == before  # not a chunk

        # With replace: streamed (manifest last) and stored as a newer version.
        replaced = await http.put(
            f"/api/v1/files/{name}", params={"replace": "true"}, content=second
        )
        assert replaced.status_code == 201, replaced.text
        assert watch.headers[-1].manifest_last and watch.headers[-1].replace
        assert replaced.json()["created"] > created.json()["created"]
        got = await http.get(f"/api/v1/files/{name}")
        assert got.status_code == 200 and got.content == second
        # The same bytes with replace: unchanged, the version kept.
        same = await http.put(f"/api/v1/files/{name}", params={"replace": "true"}, content=second)
        assert same.status_code == 200 and same.json()["unchanged"], same.text
        assert same.json()["created"] == replaced.json()["created"]
    assert watch.staged == []


BOUNDARY = "edge"
FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form_body(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart form of (field, filename or None, value) parts, in that order."""
    body = b""
    for field, filename, value in parts:
        named = f'; filename="{filename}"' if filename is not None else ""
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"{named}\r\n\r\n'
        ).encode()
        body += value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def test_a_form_with_its_size_first_streams_and_any_other_is_staged(
    net: ApiNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = await net.ring(3)
    entry = ring[0]
    name = name_owned_elsewhere(ring, entry, "form")
    watch = PutWatch(owner_of(ring, name), entry.settings.data_dir / "uploads")
    data = content(2 * MIB + 9, name)
    size = str(len(data)).encode()
    async with await net.api(entry) as http:
        streamed = await http.post(
            "/api/v1/files",
            data={"replace": "false", "size": str(len(data)), "name": name},
            files={"file": ("ignored.bin", data)},
        )
        assert streamed.status_code == 201, streamed.text
        assert streamed.json()["name"] == name
        assert [h.manifest_last for h in watch.headers] == [True] and watch.staged == []

        # A field after the file, once `size` came before it: refused, nothing stored.
        late = name_owned_elsewhere(ring, entry, "late")
        await wait_until(lambda: all(stored(p, name) for p in ring), 10, "three copies")
        before = holdings(ring)
        other = content(len(data), late)
        body = form_body(("size", None, size), ("file", late, other), ("name", None, b"else.bin"))
        refused = await http.post("/api/v1/files", content=body, headers=FORM)
        assert refused.status_code == 400 and error_code(refused) == "invalid_request"
        await wait_until(lambda: holdings(ring) == before, 10, "nothing kept of it")

        # Without `size`, or with it after the file, the file is staged as before, and
        # checked against a `size` that comes late.
        staged: list[str] = []
        copy = api_upload._copy_upload

        def copying(source: Any, target: Path) -> int:
            staged.append(target.name)
            return copy(source, target)

        monkeypatch.setattr(api_upload, "_copy_upload", copying)
        plain = await http.post("/api/v1/files", files={"file": ("plain.bin", data)})
        assert plain.status_code == 201, plain.text
        body = form_body(("file", "after.bin", data), ("size", None, size))
        after = await http.post("/api/v1/files", content=body, headers=FORM)
        assert after.status_code == 201, after.text
        assert len(staged) == 2
        body = form_body(("file", "wrong.bin", data), ("size", None, b"7"))
        wrong = await http.post("/api/v1/files", content=body, headers=FORM)
        assert wrong.status_code == 400 and error_code(wrong) == "wrong_length"


async def test_an_upload_cut_off_leaves_nothing_behind(net: ApiNetwork) -> None:
    ring = await net.ring(3)
    entry = ring[0]
    name = name_owned_elsewhere(ring, entry, "cut")
    owner = owner_of(ring, name)
    empty = holdings(ring)
    async with await net.api(entry) as http:
        host, port = http.base_url.host, http.base_url.port
    assert port is not None
    _, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"PUT /api/v1/files/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {16 * MIB}\r\n\r\n".encode()
        )
        writer.write(content(3 * MIB, name))
        await writer.drain()
        await wait_until(lambda: bool(owner.store.chunks.digests()), 10, "chunks at the owner")
    finally:
        writer.close()
    # Mostly at once, the call to the owner cancelled; at worst once the owner's put has
    # waited out its idle limit (StreamLimits.put_idle) for chunks that never come.
    idle = StreamLimits().put_idle
    await wait_until(lambda: holdings(ring) == empty, idle + 10, "the owner to drop what came")


async def test_the_document_says_how_to_stream(net: ApiNetwork) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        document = (await http.get("/openapi.json")).json()
    put = document["paths"]["/api/v1/files/{name}"]["put"]
    assert set(put["requestBody"]["content"]) == {"application/octet-stream"}
    assert {"200", "201", "400", "409", "411", "503", "507"} <= set(put["responses"])
    post = document["paths"]["/api/v1/files"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = document["components"]["schemas"][form.rsplit("/", 1)[-1]]["properties"]
    # `size` is described only: no form generated from the schema could give the right one.
    assert set(fields) == {"file", "name", "replace"}
    assert "`size`" in post["description"] and "before `file`" in post["description"]
