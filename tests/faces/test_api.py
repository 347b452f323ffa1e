"""The REST API through real HTTP against real peers on loopback: every endpoint, the error
shape, Range and ETag, the seed's paths, and a 100 MiB upload and download with flat memory."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import jsonschema_rs
import pytest
from apinet import ApiNetwork as Network
from hypothesis import example, given
from hypothesis import strategies as st
from waiting import wait_until

from chordshare.chord.messages import NodeRef
from chordshare.faces.api_inputs import ADDRESS, NEW_NAME, STORED_NAME, TARGET
from chordshare.files.names import MAX_NAME_BYTES, check_new_name, check_stored_name
from chordshare.files.search import parse_content_address
from chordshare.sharing import peer as sharing_peer
from chordshare.sharing.part_file import PartFile
from chordshare.transport.address import normalize_address

MIB = 1024 * 1024


def allowed(check: Callable[[str], object]) -> Callable[[str], bool]:
    def rule(text: str) -> bool:
        try:
            check(text)
        except ValueError:
            return False
        return True

    return rule


def download_target(text: str) -> None:
    """What a download may name (`FileClient.find`): a content address, or a stored name."""
    if parse_content_address(text) is None:
        check_stored_name(text)


RULES = [
    (NEW_NAME, allowed(check_new_name)),  # an upload's
    (STORED_NAME, allowed(check_stored_name)),  # a removal's
    (TARGET, allowed(download_target)),
]
# Every character of the BMP: the name rules single out none outside it.
BMP = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]


def engines(pattern: str) -> list[Callable[[str], bool]]:
    """The pattern as schemathesis generates from it (Python) and as JSON Schema validators
    read it (ECMA-262, here jsonschema_rs)."""
    return [
        lambda text: re.fullmatch(pattern, text) is not None,
        jsonschema_rs.validator_for({"pattern": pattern}).is_valid,
    ]


@pytest.mark.parametrize(("pattern", "rule"), RULES)
def test_the_documented_name_patterns_say_what_the_name_rules_say(
    pattern: str, rule: Callable[[str], bool]
) -> None:
    matchers = engines(pattern)
    for char in BMP:
        for text in (char, f"a{char}b", f"{char}a", f"a{char}", f"{char}{char}"):
            assert all(match(text) == rule(text) for match in matchers), (pattern, text)
    for digits in ("ab" * 32, "a" * 63, "a" * 65, "a" * 8, "a" * 7, "x" * 8, ""):
        assert all(match(f"sha256:{digits}") == rule(f"sha256:{digits}") for match in matchers)
    for text in ("sha256", "...", " . "):
        assert all(match(text) == rule(text) for match in matchers), (pattern, text)


@given(st.text(max_size=40))
def test_the_documented_name_patterns_agree_on_any_text(text: str) -> None:
    if len(text.encode()) > MAX_NAME_BYTES:
        return  # the byte limit is not a pattern's (maxLength says 255 characters)
    for pattern, rule in RULES:
        assert all(match(text) == rule(text) for match in engines(pattern)), (pattern, text)


@given(st.text(st.sampled_from("a/. \t\\\x1b\u202e"), max_size=12))
@example("a/b")
@example("a/../b")
@example("./a")
@example("a/ b")
@example("a //b")
def test_the_documented_name_patterns_agree_on_paths(text: str) -> None:
    for pattern, rule in RULES:
        assert all(match(text) == rule(text) for match in engines(pattern)), (pattern, text)


@given(st.from_regex(ADDRESS, fullmatch=True))
def test_every_address_the_document_allows_is_one(address: str) -> None:
    normalize_address(address)


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]


async def test_ring_endpoints(net: Network) -> None:
    await net.ring(4)
    async with await net.api(net.peers[0]) as http:
        node = (await http.get("/api/v1/node")).json()
        assert node["address"] == net.peers[0].server.node.me.address
        assert len(node["successors"]) >= 3 and node["predecessor"] is not None
        assert len(node["fingers"]) == 160
        ring = (await http.get("/api/v1/ring")).json()
        assert len(ring["nodes"]) == 4
        found = (await http.get("/api/v1/lookup", params={"key": "report.pdf"})).json()
        assert found["key"] == net.peers[0].server.node.space.hash("report.pdf")
        assert found["owner"]["address"] in {p.server.node.me.address for p in net.peers}
        by_id = (await http.get("/api/v1/lookup", params={"id": found["key"]})).json()
        assert by_id["owner"] == found["owner"]
        for params in ({}, {"key": "a", "id": 1}, {"id": 2**160}, {"id": "x"}):
            response = await http.get("/api/v1/lookup", params=params)
            assert response.status_code == 400, params
            assert error_of(response)["code"] == "invalid_request"
        missing = await http.get("/api/v1/nothing-here")
        assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
        assert (await http.get("/docs")).status_code == 200
        schema = (await http.get("/openapi.json")).json()
        assert "/api/v1/files/{name}" in schema["paths"]

        fingers = (await http.get("/finger_table")).json()
        assert fingers["fingers"] == node["fingers"]
        assert (await http.get("/get_predecessor")).json()["predecessor"] == node["predecessor"]
        successor = (await http.get("/get_successor")).json()
        assert successor["successor"] == node["successors"][0]


async def test_requests_share_the_owners_they_met(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request makes a FileClient of its own, but they share one route cache: the get
    of a name goes straight to the owner its put found, with no lookup."""
    lookups: list[int] = []

    class CountingRing(sharing_peer.NodeRing):
        async def owner(self, key: int) -> NodeRef:
            lookups.append(key)
            return await super().owner(key)

    await net.ring(3)
    # Patched once the peers have started: the rings their own rounds use are not counted.
    monkeypatch.setattr(sharing_peer, "NodeRing", CountingRing)
    async with await net.api(net.peers[0]) as http:
        for i in range(4):
            body = f"shared {i}".encode()
            put = await http.post("/api/v1/files", files={"file": (f"shared-{i}.txt", body)})
            assert put.status_code == 201, put.text
        looked_up = len(lookups)
        assert 1 <= looked_up <= 4
        for i in range(4):
            got = await http.get(f"/api/v1/files/shared-{i}.txt")
            assert got.content == f"shared {i}".encode()
        assert len(lookups) == looked_up


async def test_files_endpoints(net: Network, tmp_path: Path) -> None:
    await net.ring(4)
    data = hashlib.shake_256(b"api").digest(3 * MIB + 5)
    async with await net.api(net.peers[0]) as a, await net.api(net.peers[3]) as d:
        created = await a.post(
            "/api/v1/files", files={"file": ("q3-report.pdf", data)}, data={"name": ""}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "q3-report.pdf" and body["size"] == len(data)
        assert body["sha256"] == hashlib.sha256(data).hexdigest() and not body["unchanged"]
        again = await a.post("/api/v1/files", files={"file": ("q3-report.pdf", data)})
        assert again.status_code == 200 and again.json()["unchanged"]
        clash = await a.post("/api/v1/files", files={"file": ("q3-report.pdf", b"other")})
        assert clash.status_code == 409 and error_of(clash)["code"] == "already_exists"
        for bad in ("a/../b", "..", "/abs", "x" * 300):
            refused = await a.post("/api/v1/files", files={"file": ("f", b"x")}, data={"name": bad})
            assert refused.status_code == 400 and error_of(refused)["code"] == "bad_name"
        no_file = await a.post("/api/v1/files", data={"name": "x"})
        assert no_file.status_code == 400 and error_of(no_file)["code"] == "invalid_request"

        got = await d.get("/api/v1/files/q3-report.pdf")
        assert got.status_code == 200 and got.content == data
        digest = hashlib.sha256(data).hexdigest()
        assert got.headers["x-content-sha256"] == digest
        assert got.headers["etag"] == f'"{digest}"'
        part = await d.get("/api/v1/files/q3-report.pdf", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]
        tail = await d.get("/api/v1/files/q3-report.pdf", headers={"Range": f"bytes={MIB}-"})
        assert tail.status_code == 206 and tail.content == data[MIB:]
        cached = await d.get(
            "/api/v1/files/q3-report.pdf", headers={"If-None-Match": f'"{digest}"'}
        )
        assert cached.status_code == 304
        by_content = await d.get(f"/api/v1/files/sha256:{digest}")
        assert by_content.content == data

        mine = (await a.get("/api/v1/files")).json()
        assert "files" in mine and "used_bytes" in mine
        await wait_until(lambda: _holders(net, "q3-report.pdf") == 3, 10, "3 copies")
        everything = (await d.get("/api/v1/files", params={"scope": "network"})).json()
        [listed] = everything["files"]
        assert listed["name"] == "q3-report.pdf" and len(listed["holders"]) == 3
        bad_scope = await d.get("/api/v1/files", params={"scope": "galaxy"})
        assert bad_scope.status_code == 400

        async def found() -> list[str]:
            return [
                f["name"]
                for f in (await d.get("/api/v1/search", params={"q": "report"})).json()["files"]
            ]

        deadline = asyncio.get_running_loop().time() + 10
        while await found() != ["q3-report.pdf"]:
            assert asyncio.get_running_loop().time() < deadline, "search never found it"
            await asyncio.sleep(0.1)
        no_word = await d.get("/api/v1/search", params={"q": "..."})
        assert no_word.status_code == 200 and no_word.json() == {"files": []}
        assert (await d.get("/api/v1/search")).status_code == 400
        assert (await d.get("/api/v1/search", params={"q": ""})).status_code == 400

        seeded = await a.post("/upload_file", files={"file": ("notes.txt", b"seed notes")})
        assert seeded.status_code == 201
        stored = seeded.json()
        assert (stored["name"], stored["size"]) == ("notes.txt", 10)
        assert stored["sha256"] == hashlib.sha256(b"seed notes").hexdigest()
        # The seed's paths answer what the API proper answers.
        assert (await a.get("/show_files")).json() == (await a.get("/api/v1/files")).json()
        seed_get = await d.post("/download_file", json={"file_name": "notes.txt"})
        assert seed_get.content == b"seed notes"
        assert seed_get.headers["x-content-sha256"] == stored["sha256"]
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the index records follow the upload
            seed_search = await d.post("/search_file", json={"file_name": "notes"})
            names = [f["name"] for f in seed_search.json()["files"]]
            if "notes.txt" in names:
                break
            assert asyncio.get_running_loop().time() < deadline, names
            await asyncio.sleep(0.1)
        proper = await d.get("/api/v1/search", params={"q": "notes"})
        assert seed_search.json() == proper.json()
        assert (await d.post("/download_file", json={})).status_code == 400

        # Put through a's API, it is signed by a's key: another node's API cannot remove it.
        denied = await d.delete("/api/v1/files/q3-report.pdf")
        assert denied.status_code == 403 and error_of(denied)["code"] == "permission_denied"
        assert "belongs to key" in error_of(denied)["message"]
        assert (await d.get("/api/v1/files/q3-report.pdf")).status_code == 200
        assert (await a.delete("/api/v1/files/q3-report.pdf")).status_code == 204
        gone = await d.get("/api/v1/files/q3-report.pdf")
        assert gone.status_code == 404 and error_of(gone)["code"] == "not_found"
        twice = await a.delete("/api/v1/files/q3-report.pdf")
        assert twice.status_code == 404

        other = net.peers[1].server.node.me.address
        theirs = (await a.get("/api/v1/files", params={"address": other})).json()
        assert theirs["node"] == other and "files" in theirs
        nobody = await a.get("/api/v1/files", params={"address": "127.0.0.1:1"})
        assert nobody.status_code == 404 and error_of(nobody)["code"] == "node_not_found"

        leaving = await a.post("/api/v1/node/leave")
        assert leaving.status_code == 202
        await wait_until(lambda: net.left == ["left"], 5, "the leave callback")
        assert (await a.post("/shutdown")).status_code == 202  # the seed's alias
        get_shutdown = await a.get("/shutdown")  # a GET never changes a node
        assert get_shutdown.status_code == 405 and get_shutdown.headers["allow"] == "POST"
        assert net.left == ["left", "left"]
        await wait_until(lambda: net.left == ["left", "left"], 5, "the second leave")


def _holders(net: Network, name: str) -> int:
    return sum(1 for p in net.peers if p.store.manifest(name) is not None)


async def test_a_100_mib_upload_and_download_stream_with_flat_memory(
    net: Network, tmp_path: Path
) -> None:
    await net.ring(1)
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for i in range(100):
            out.write(hashlib.shake_256(f"{i}".encode()).digest(MIB))
    async with await net.api(net.peers[0]) as http:
        tracemalloc.start()
        try:
            with source.open("rb") as body:
                created = await http.post("/api/v1/files", files={"file": ("big.bin", body)})
            assert created.status_code == 201, created.text
            digest = hashlib.sha256()
            received = 0
            async with http.stream("GET", "/api/v1/files/big.bin") as response:
                async for piece in response.aiter_bytes():
                    digest.update(piece)
                    received += len(piece)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == 100 * MIB
    assert digest.hexdigest() == created.json()["sha256"]
    # Client and node share this process: neither held the file (100 MiB) in memory.
    assert peak < 24 * MIB, f"peak Python memory {peak / MIB:.1f} MiB"


async def test_metrics_count_the_nodes_work(net: Network, tmp_path: Path) -> None:
    await net.ring(3)
    async with await net.api(net.peers[0]) as http:
        await http.post("/api/v1/files", files={"file": ("m.bin", b"m" * 5000)})
        for name in ("a", "b", "c"):
            await http.get("/api/v1/lookup", params={"key": name})
        text = (await http.get("/metrics")).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["chordshare_lookup_hops_count"] >= 3
    assert values["chordshare_lookup_failures_total"] == 0
    assert values['chordshare_rpc_seconds_count{method="GetNeighbors"}'] >= 1  # stabilize
    assert values["chordshare_ring_size_estimate"] == 3.0  # a short list names every node
    assert any(k.startswith("chordshare_stored_files") for k in values)
    assert values["chordshare_stabilize_failures_total"] == 0
    assert "chordshare_maintenance_failures" in text

    # Crash this node's successor: its stabilize finds it dead and counts that.
    successor = net.peers[0].server.node.state.successor.address
    victim = next(p for p in net.peers if p.server.node.me.address == successor)
    await victim.stop(graceful=False)
    async with await net.api(net.peers[0]) as http:

        async def failures() -> float:
            for line in (await http.get("/metrics")).text.splitlines():
                if line.startswith("chordshare_stabilize_failures_total"):
                    return float(line.split()[1])
            return 0.0

        deadline = asyncio.get_running_loop().time() + 10
        while await failures() < 1:
            assert asyncio.get_running_loop().time() < deadline, "no stabilize failure counted"
            await asyncio.sleep(0.1)


async def test_a_full_disk_on_the_api_node_is_a_507(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    await net.ring(2)
    data = hashlib.shake_256(b"full").digest(2 * MIB)
    async with await net.api(net.peers[0]) as a, await net.api(net.peers[1]) as b:
        created = await a.post("/api/v1/files", files={"file": ("big.bin", data)})
        assert created.status_code == 201, created.text

        def full(self: PartFile, data: bytes, offset: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(PartFile, "write", full)
        refused = await b.get("/api/v1/files/big.bin")
        assert refused.status_code == 507, refused.text
        error = error_of(refused)
        assert error["code"] == "insufficient_storage"
        assert "No space left on device" in error["message"]
        monkeypatch.undo()
        got = await b.get("/api/v1/files/big.bin")  # room again: the download resumes
        assert got.status_code == 200 and got.content == data
