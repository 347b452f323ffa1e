"""The API's doors through real HTTP against a real peer on loopback: a foreign Host gets 403
on every operation of the OpenAPI document, a page of another origin can change nothing
(with the token or without), a GET never changes a node, and only listed origins are sent
CORS headers."""

from __future__ import annotations

import httpx
from apinet import ApiNetwork as Network
from apinet import call, operations, stored

from chordshare.faces.api import ApiServer
from chordshare.faces.api_doors import Doors
from chordshare.faces.api_token import ApiAuth

TOKEN = "doors-Token_0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
CHANGES = [
    ("POST", "/api/v1/files"),
    ("PUT", "/api/v1/files/{name}"),
    ("POST", "/upload_file"),
    ("DELETE", "/api/v1/files/{name}"),
    ("POST", "/api/v1/node/leave"),
    ("POST", "/shutdown"),
]


def forbidden(response: httpx.Response) -> bool:
    """A 403 in the API's error shape."""
    if response.status_code != 403:
        return False
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "forbidden", body
    assert body["error"]["message"]
    return True


async def test_a_foreign_host_gets_403_on_every_operation(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        assert (await call(http, "POST", "/api/v1/files", GOOD)).status_code == 201
        schema = (await http.get("/openapi.json")).json()
        ops = operations(schema)
        assert ("POST", "/shutdown") in ops and len(ops) > 15
        for method, path in sorted(ops):
            for headers in ({"Host": "attacker.example"}, {"Host": "attacker.example", **GOOD}):
                response = await call(http, method, path, headers)
                if path == "/healthz":
                    assert response.status_code == 200, response.text
                else:
                    assert forbidden(response), (method, path, response.status_code)
        for path in ("/", "/static/app.js", "/docs", "/openapi.json", "/no-such-page"):
            assert forbidden(await http.get(path, headers={"Host": "attacker.example"})), path
        # Nothing changed and the node is still there.
        assert stored(peer, "intruder.txt") and net.left == []
        assert (await http.get("/api/v1/node")).status_code == 200


async def test_a_page_of_another_origin_changes_nothing(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        kept = await http.post("/api/v1/files", files={"file": ("kept.txt", b"kept")}, headers=GOOD)
        assert kept.status_code == 201
        pages = [
            {"Origin": "http://127.0.0.2:28999"},
            {"Origin": "null"},
            {"Referer": "http://evil.test/page.html"},
        ]
        for method, path in CHANGES:
            for page in pages:
                for token in ({}, GOOD):
                    response = await call(http, method, path, {**page, **token})
                    assert forbidden(response), (method, path, page, token)
                    assert "access-control-allow-origin" not in response.headers
        assert stored(peer, "kept.txt") and not stored(peer, "intruder.txt")
        assert net.left == []
        # The page of the API's own origin (the dashboard) may, with the token.
        own = {"Origin": str(http.base_url).rstrip("/"), **GOOD}
        assert (await call(http, "DELETE", "/api/v1/files/{name}", own)).status_code == 204
        assert not stored(peer, "kept.txt")


async def test_a_get_never_changes_a_node(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        schema = (await http.get("/openapi.json")).json()
        changing = {path for method, path in operations(schema) if method != "GET"}
        for path in changing:
            if "get" in schema["paths"][path]:
                continue  # a resource with a reading GET beside its change (files/{name})
            response = await http.get(path.replace("{name}", "x"), headers=GOOD)
            assert response.status_code == 405, (path, response.status_code)
            assert response.headers["allow"], path
        assert net.left == []


async def test_only_listed_origins_get_cors_headers(net: Network) -> None:
    [peer] = await net.ring(1)
    listed = "http://ui.example:8080"
    doors = Doors.for_node(["127.0.0.1"], cors_origins=[listed])
    server = ApiServer(peer, "127.0.0.1:0", lambda: net.left.append("left"), ApiAuth(TOKEN), doors)
    net.apis.append(server)
    async with httpx.AsyncClient(base_url=await server.start(), timeout=30) as http:
        preflight = await http.options(
            "/api/v1/files",
            headers={
                "Origin": listed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == listed
        upload = await call(http, "POST", "/api/v1/files", {"Origin": listed, **GOOD})
        assert upload.status_code == 201
        assert upload.headers["access-control-allow-origin"] == listed
        other = await call(http, "POST", "/api/v1/files", {"Origin": "http://b.example", **GOOD})
        assert forbidden(other) and "access-control-allow-origin" not in other.headers
        read = await http.get("/api/v1/node", headers={"Origin": "http://b.example"})
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


REFUSED_NAMES = {
    "ESC": "esc2\x1b[31mRED\x1b[0m\x1b]0;PWNED",
    "newline": "forged\nINFO stored x.txt",
    "tab": "a\tb.txt",
    "DEL": "del\x7f.txt",
    "C1": "next\x85line.txt",
    "bidi override": "invoice\u202etxt.exe",
    "bidi isolate": "a\u2066b.txt",
    "line separator": "a\u2028b.txt",
    "dot": ".",
    "dot dot": "..",
}


async def test_uploads_of_refused_names_are_400_and_store_nothing(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer, ApiAuth(TOKEN)) as http:
        for what, name in REFUSED_NAMES.items():
            for field in ("name", "filename"):
                if field == "name":
                    sent = {"files": {"file": ("x.bin", b"x")}, "data": {"name": name}}
                else:
                    sent = {"files": {"file": (name, b"x")}}
                answer = await http.post("/api/v1/files", headers=GOOD, **sent)
                if field == "filename" and answer.status_code == 201:
                    # The multipart parser may drop a control character from a filename
                    # itself; whatever it kept must be a name the rule accepts.
                    assert answer.json()["name"] != name, what
                    continue
                assert answer.status_code == 400, (what, field, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "bad_name", error
                assert not any(c in error["message"] for c in name if not c.isprintable())
        stored_names = [m.name for m in peer.store.manifests()]
        assert not set(stored_names) & set(REFUSED_NAMES.values())
        # Two dots inside a name are harmless, and round-trip.
        done = await http.post(
            "/api/v1/files", headers=GOOD, files={"file": ("v1..2.txt", b"second draft")}
        )
        assert done.status_code == 201, done.text
        assert (await http.get("/api/v1/files/v1..2.txt")).content == b"second draft"
