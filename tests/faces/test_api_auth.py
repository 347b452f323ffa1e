"""The REST API's token, through real HTTP against real peers on loopback: every writing
endpoint refused without it or with a wrong one (and nothing changed), accepted with it; the
reading endpoints open unless protected; /healthz always open; the OpenAPI document naming
the bearer scheme on exactly the protected operations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from apinet import ApiNetwork as Network
from apinet import call, operations, stored
from peernet import FAST
from waiting import wait_until

from chordshare.faces.api_token import ApiAuth
from chordshare.node.server import NodeSettings
from chordshare.sharing.peer import SharingPeer, SharingSettings

TOKEN = "s3cret-Token_0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
BAD_HEADERS: dict[str, dict[str, str]] = {
    "missing": {},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "a prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "not bearer": {"Authorization": f"Basic {TOKEN}"},
    "no credentials": {"Authorization": "Bearer"},
}
# (method, path) of every operation that changes something, with a request that would work.
WRITES = {
    ("POST", "/api/v1/files"),
    ("PUT", "/api/v1/files/{name}"),
    ("DELETE", "/api/v1/files/{name}"),
    ("POST", "/api/v1/node/leave"),
    ("POST", "/upload_file"),
    ("POST", "/shutdown"),
    ("POST", "/api/v1/folders/{name}"),
    ("DELETE", "/api/v1/folders/{name}"),
}
ALWAYS_OPEN = {("GET", "/healthz")}


def refused(response: httpx.Response) -> bool:
    """A 401 in the project's error shape, with a Bearer challenge."""
    if response.status_code != 401:
        return False
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == "unauthenticated" and body["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    return True


async def test_writes_need_the_token_and_change_nothing_without_it(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        kept = await http.post(
            "/api/v1/files", files={"file": ("kept.txt", b"keep me")}, headers=GOOD
        )
        assert kept.status_code == 201, kept.text
        for method, path in sorted(WRITES):
            for why, headers in BAD_HEADERS.items():
                response = await call(http, method, path, headers)
                assert refused(response), (method, path, why, response.status_code)
        wrong = await http.delete("/api/v1/files/kept.txt", headers=BAD_HEADERS["wrong"])
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert "wrong" in wrong.json()["error"]["message"]
        missing = await http.delete("/api/v1/files/kept.txt")
        assert missing.headers["www-authenticate"] == "Bearer"

        # Nothing changed: the file is still there, no intruder, the node did not leave (a
        # leave is scheduled with call_soon: later requests would have let it run).
        assert (await http.get("/api/v1/files/kept.txt")).content == b"keep me"
        assert stored(peer, "kept.txt") and not stored(peer, "intruder.txt")
        assert net.left == [] and (await http.get("/healthz")).status_code == 200

        # With the token (any case of the scheme's name), each of them works.
        for scheme in ("Bearer", "bearer"):
            headers = {"Authorization": f"{scheme} {TOKEN}"}
            assert (await call(http, "POST", "/api/v1/files", headers)).status_code == 201
            assert (
                await http.delete("/api/v1/files/intruder.txt", headers=headers)
            ).status_code == 204
        assert (await call(http, "POST", "/upload_file", GOOD)).status_code == 201
        put = await http.put("/api/v1/files/put.txt", content=b"as a body", headers=GOOD)
        assert put.status_code == 201 and stored(peer, "put.txt")
        assert (await call(http, "DELETE", "/api/v1/files/{name}", GOOD)).status_code == 204
        assert not stored(peer, "kept.txt")
        assert (await http.post("/api/v1/node/leave", headers=GOOD)).status_code == 202
        await wait_until(lambda: net.left == ["left"], 5, "the leave callback")
        assert (await http.post("/shutdown", headers=GOOD)).status_code == 202
        await wait_until(lambda: net.left == ["left", "left"], 5, "the second leave")


async def test_reads_are_open_unless_protected(net: Network) -> None:
    [peer] = await net.ring(1)
    writes_only = await net.api(peer, ApiAuth(TOKEN))
    everything = await net.api(peer, ApiAuth(TOKEN, protect_reads=True))
    open_api = await net.api(peer)
    async with writes_only as w, everything as e, open_api as o:
        put = await w.post("/api/v1/files", files={"file": ("kept.txt", b"k")}, headers=GOOD)
        assert put.status_code == 201
        folder = {"file": ("in/k.txt", b"k")}
        put = await w.post("/api/v1/folders/kept", files=folder, headers=GOOD)
        assert put.status_code == 201
        schema = (await w.get("/openapi.json")).json()
        reads = set(operations(schema)) - WRITES - ALWAYS_OPEN
        assert {("GET", "/api/v1/files/{name}"), ("GET", "/metrics")} <= reads
        assert len(reads) >= 13
        for method, path in sorted(reads):
            open_answer = await call(w, method, path, {})
            assert open_answer.status_code == 200, (method, path, open_answer.text[:200])
            assert (await call(o, method, path, {})).status_code == 200, (method, path)
            for why, headers in BAD_HEADERS.items():
                assert refused(await call(e, method, path, headers)), (method, path, why)
            allowed = await call(e, method, path, GOOD)
            assert allowed.status_code == 200, (method, path, allowed.text[:200])
        download = await e.get("/api/v1/files/kept.txt", headers=GOOD)
        assert download.content == b"k"
        # The page that asks for the token, its documentation and readiness stay open.
        for path in ("/", "/static/app.js", "/static/style.css", "/docs", "/openapi.json"):
            assert (await e.get(path)).status_code == 200, path
        assert (await e.get("/healthz")).json() == {"status": "serving"}
        assert net.left == []


async def test_the_openapi_document_names_the_bearer_scheme_where_it_is_needed(
    net: Network,
) -> None:
    [peer] = await net.ring(1)
    apis = {
        "open": await net.api(peer),
        "writes": await net.api(peer, ApiAuth(TOKEN)),
        "all": await net.api(peer, ApiAuth(TOKEN, protect_reads=True)),
    }
    schemas = {}
    for name, http in apis.items():
        async with http:
            schemas[name] = (await http.get("/openapi.json")).json()

    def secured(schema: dict[str, Any]) -> set[tuple[str, str]]:
        return {key for key, op in operations(schema).items() if op.get("security")}

    assert "securitySchemes" not in schemas["open"].get("components", {})
    assert secured(schemas["open"]) == set()
    for name in ("writes", "all"):
        scheme = schemas[name]["components"]["securitySchemes"]["bearer"]
        assert scheme["type"] == "http" and scheme["scheme"] == "bearer", scheme
        for op in operations(schemas[name]).values():
            assert op.get("security", [{"bearer": []}]) == [{"bearer": []}]
    assert secured(schemas["writes"]) == WRITES
    assert secured(schemas["all"]) == set(operations(schemas["all"])) - ALWAYS_OPEN


async def test_an_upload_without_the_token_is_refused_before_its_body_is_read(
    net: Network,
) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        host, port = http.base_url.host, http.base_url.port
    assert port is not None
    # Announce 1 GiB and send a few bytes: the answer must come without the rest.
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /api/v1/files HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1073741824\r\n\r\n--b\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 401"), status
    assert not list((peer.settings.data_dir / "uploads").iterdir())


async def test_healthz_is_open_and_says_whether_the_node_is_on_a_ring(
    net: Network, tmp_path: Path
) -> None:
    # A peer that has not started yet: not on a ring.
    peer = SharingPeer(
        NodeSettings(bind="127.0.0.1:0", timing=FAST),
        SharingSettings(data_dir=tmp_path / "late"),
    )
    async with await net.api(peer, ApiAuth(TOKEN, protect_reads=True)) as http:
        before = await http.get("/healthz")
        assert before.status_code == 503, before.text
        assert before.json()["error"]["code"] == "unavailable"
        await peer.start()
        net.peers.append(peer)
        after = await http.get("/healthz")
        assert after.status_code == 200 and after.json() == {"status": "serving"}
        assert refused(await http.get("/api/v1/node"))


def test_a_token_must_be_usable_and_is_not_shown() -> None:
    for bad in ("", " ", "has space", "newline\n", "tab\t", "naïve"):
        with pytest.raises(ValueError, match="printable ASCII"):
            ApiAuth(bad)
    assert TOKEN not in repr(ApiAuth(TOKEN, protect_reads=True))
    assert ApiAuth().token is None and not ApiAuth().protect_reads
