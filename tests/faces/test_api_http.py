"""The REST API's HTTP conventions (RFC 9110) through real HTTP against real peers: HEAD
wherever GET is, Allow on every 405, conditional requests, ranges that fetch only the chunks
they cover, and the download cache's limit."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from apinet import ApiNetwork as Network
from apinet import operations
from waiting import wait_until

from chordshare.config import ConfigError, load_config
from chordshare.faces.api import ApiServer
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.download import DownloadError
from chordshare.sharing.download_cache import DEFAULT_CACHE_BYTES
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ranges import stream_span
from chordshare.transport.base import PeerError

KIB = 1024
MIB = 1024 * KIB
CHUNK = 256 * KIB  # the chunk size of a file of a few MiB


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


async def put(http: httpx.AsyncClient, name: str, data: bytes) -> dict[str, Any]:
    created = await http.post("/api/v1/files", files={"file": (name, data)})
    assert created.status_code == 201, created.text
    return created.json()


async def served(net: Network, cache_bytes: int) -> tuple[SharingPeer, httpx.AsyncClient]:
    """A peer of its own ring with a download cache of `cache_bytes`, and its API."""
    peer = await net.start(cache_bytes=cache_bytes)
    server = ApiServer(peer, "127.0.0.1:0", lambda: None)
    net.apis.append(server)  # stopped with the network
    return peer, httpx.AsyncClient(base_url=await server.start(), timeout=30)


def downloads(peer: SharingPeer) -> dict[str, int]:
    """What the download cache's folder holds: file name -> size."""
    folder = peer.settings.data_dir / "downloads"
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def received(peer: SharingPeer) -> int:
    """Chunk bytes this peer has received from the others."""
    assert peer.peers is not None
    return sum(peer.peers.bytes.received.values())


def comparable(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "date"}


async def test_head_answers_every_get_of_the_document_with_its_headers_and_no_body(
    net: Network,
) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        await put(http, "head.bin", b"h" * 100 * KIB)
        files = [("file", ("in/h.bin", b"h" * KIB))]
        assert (await http.post("/api/v1/folders/head", files=files)).status_code == 201
        schema = (await http.get("/openapi.json")).json()
        reads = sorted(path for method, path in operations(schema) if method == "GET")
        assert len(reads) >= 12, reads
        params = {
            "/api/v1/lookup": {"key": "head.bin"},
            "/api/v1/search": {"q": "head"},
            "/api/v1/link": {"name": "head.bin"},
        }
        link = await http.get("/api/v1/link", params=params["/api/v1/link"])
        params["/api/v1/link/file"] = {"link": link.json()["link"]}
        for path in [*reads, "/", "/static/app.js", "/docs"]:
            url = path.replace("{name}", "head" if "/folders/" in path else "head.bin")
            got = await http.get(url, params=params.get(path))
            head = await http.head(url, params=params.get(path))
            assert head.status_code == got.status_code == 200, (path, head.status_code)
            assert head.content == b"", path
            assert head.headers.keys() == got.headers.keys(), path
            assert head.headers["content-type"] == got.headers["content-type"], path
            if path != "/metrics":  # its counters move between the two requests
                assert head.headers["content-length"] == got.headers["content-length"], path
        # The file, cached by the GETs above: the very same headers.
        got = await http.get("/api/v1/files/head.bin")
        head = await http.head("/api/v1/files/head.bin")
        assert comparable(head) == comparable(got)
        ranged = {"Range": "bytes=10-19"}
        got = await http.get("/api/v1/files/head.bin", headers=ranged)
        head = await http.head("/api/v1/files/head.bin", headers=ranged)
        assert head.status_code == got.status_code == 206
        assert comparable(head) == comparable(got) and head.content == b""


async def test_every_405_names_every_method_of_its_resource(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        schema = (await http.get("/openapi.json")).json()
        for path, item in schema["paths"].items():
            declared = {method.upper() for method in item}
            allowed = declared | ({"HEAD"} if "GET" in declared else set())
            url = path.replace("{name}", "x")
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - allowed:
                refused = await http.request(method, url)
                assert refused.status_code == 405, (method, path, refused.status_code)
                assert set(refused.headers["allow"].split(", ")) == allowed, (method, path)
                assert error_of(refused)["code"] == "method_not_allowed"
        for url in ("/static/app.js", "/"):
            refused = await http.post(url)
            assert refused.status_code == 405
            assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}, url
            assert error_of(refused)["code"] == "method_not_allowed"


async def test_if_none_match_in_each_form(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        digest = (await put(http, "tagged.txt", b"tagged" * 1000))["sha256"]
        url = "/api/v1/files/tagged.txt"
        answers = {
            f'"{digest}"': 304,
            f'W/"{digest}"': 304,  # weak comparison: W/ does not matter
            f'"other", W/"{digest}"': 304,
            f'"a,b", "{digest}"': 304,  # a comma inside a tag
            "*": 304,
            '"other"': 200,
            'W/"other", "more"': 200,
            digest: 200,  # not a tag: unquoted
            f'"other" "{digest}"': 200,  # not a list: no comma
        }
        for header, status in answers.items():
            answer = await http.get(url, headers={"If-None-Match": header})
            assert answer.status_code == status, header
            if status == 304:
                assert answer.content == b"" and answer.headers["etag"] == f'"{digest}"'
            head = await http.head(url, headers={"If-None-Match": header})
            assert head.status_code == status, header


async def test_if_modified_since_and_last_modified(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        stored = await put(http, "dated.txt", b"dated" * 1000)
        url = "/api/v1/files/dated.txt"
        got = await http.get(url)
        assert got.headers["last-modified"] == formatdate(int(stored["created"]), usegmt=True)
        modified = got.headers["last-modified"]
        before = formatdate(int(stored["created"]) - 1, usegmt=True)
        later = formatdate(int(stored["created"]) + 3600, usegmt=True)
        for since, status in ((modified, 304), (later, 304), (before, 200), ("not a date", 200)):
            answer = await http.get(url, headers={"If-Modified-Since": since})
            assert answer.status_code == status, since
        # If-None-Match decides when both are given.
        both = {"If-Modified-Since": modified, "If-None-Match": '"other"'}
        assert (await http.get(url, headers=both)).status_code == 200
        both = {"If-Modified-Since": before, "If-None-Match": f'"{stored["sha256"]}"'}
        assert (await http.get(url, headers=both)).status_code == 304


async def test_ranges(net: Network) -> None:
    [peer] = await net.ring(1)
    data = hashlib.shake_256(b"ranges").digest(100 * KIB)
    size = len(data)
    async with await net.api(peer) as http:
        digest = (await put(http, "ranged.bin", data))["sha256"]
        url = "/api/v1/files/ranged.bin"
        for header, start, end in (
            ("bytes=1000-1999", 1000, 2000),  # single
            ("bytes=-500", size - 500, size),  # suffix
            (f"bytes={size - 10}-", size - 10, size),  # open
            (f"bytes=0-{size * 2}", 0, size),  # past the end: cut there
        ):
            part = await http.get(url, headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == data[start:end], header
            assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
            assert part.headers["content-length"] == str(end - start)
        # Another unit; several ranges, one of them past the end: answered whole.
        for ignored in ("items=0-5", "bytes=0-1, 5-6", f"bytes={size}-, 0-1"):
            whole = await http.get(url, headers={"Range": ignored})
            assert whole.status_code == 200 and whole.content == data, ignored
        # Past the end, or malformed (a malformed range spoils the whole header).
        refused_ranges = (f"bytes={size}-", "bytes=-0", "bytes=5-2", "bytes=5-2, 0-1", "bytes=")
        for refused in (*refused_ranges, "bytes=abc"):
            answer = await http.get(url, headers={"Range": refused})
            assert answer.status_code == 416, refused
            assert answer.headers["content-type"] == "application/json"
            assert error_of(answer)["code"] == "range_not_satisfiable"
            assert answer.headers["content-range"] == f"bytes */{size}"
        # If-Range: the range holds for the current version only.
        current = {"Range": "bytes=0-9", "If-Range": f'"{digest}"'}
        assert (await http.get(url, headers=current)).status_code == 206
        stale = {"Range": "bytes=0-9", "If-Range": '"other"'}
        assert (await http.get(url, headers=stale)).content == data


async def test_a_range_fetches_only_the_chunks_that_cover_it(net: Network) -> None:
    peers = await net.ring(4)
    data = hashlib.shake_256(b"covering").digest(3 * MIB)
    async with await net.api(peers[0]) as a:
        await put(a, "movie.bin", data)
        await wait_until(lambda: holders(net, "movie.bin") == 3, 10, "3 copies")
        stranger = next(p for p in peers if p.store.manifest("movie.bin") is None)
        async with await net.api(stranger) as http:
            before = received(stranger)
            head = await http.head("/api/v1/files/movie.bin", headers={"Range": "bytes=0-9"})
            assert head.status_code == 206 and received(stranger) == before  # fetched nothing
            part = await http.get("/api/v1/files/movie.bin", headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206 and part.content == data[1000:2000]
            assert received(stranger) - before == CHUNK  # the one chunk that covers it
            across = {"Range": f"bytes={CHUNK - 10}-{CHUNK + 9}"}
            part = await http.get("/api/v1/files/movie.bin", headers=across)
            assert part.content == data[CHUNK - 10 : CHUNK + 10]
            assert received(stranger) - before == 3 * CHUNK  # and the two on each side
            tail = await http.get("/api/v1/files/movie.bin", headers={"Range": "bytes=-5"})
            assert tail.content == data[-5:]
            assert received(stranger) - before == 4 * CHUNK
            assert sum(downloads(stranger).values()) == 0  # nothing kept


async def test_a_range_passes_over_holders_that_fail_lie_or_lack_its_chunks() -> None:
    data = hashlib.shake_256(b"holders").digest(16 * KIB)
    manifest = manifest_of(data, "f.bin", KIB)
    asked: list[tuple[str, list[int]]] = []

    async def fetch(address: str, sha256: bytes, indexes: Sequence[int]) -> AsyncIterator[Any]:
        asked.append((address, list(indexes)))
        if address == "dead":
            raise PeerError(address, "connection refused")
        for index in indexes if address != "short" else indexes[:1]:
            chunk = data[index * KIB : (index + 1) * KIB]
            yield index, (b"x" + chunk[1:] if address == "liar" else chunk)

    async def span(holders: list[str], start: int, end: int) -> bytes:
        return b"".join([p async for p in stream_span(manifest, holders, fetch, start, end)])

    assert await span(["dead", "liar", "short", "good"], 1500, 9000) == data[1500:9000]
    assert [a for a, _ in asked] == ["dead", "liar", "short", "good", "good"]
    assert asked[-2:] == [("good", [2, 3, 4, 5]), ("good", [6, 7, 8])]  # the covering ones
    with pytest.raises(DownloadError, match="chunk 1 failed its SHA-256 check"):
        await span(["dead", "liar"], 1500, 9000)

    # Each chunk is handed on as it arrives, not once the batch is in.
    sent_rest = asyncio.Event()

    async def slow(address: str, sha256: bytes, indexes: Sequence[int]) -> AsyncIterator[Any]:
        for index in indexes:
            if index > 0:
                await sent_rest.wait()
            yield index, data[index * KIB : (index + 1) * KIB]

    pieces = stream_span(manifest, ["slow"], slow, 0, 3 * KIB)
    assert await asyncio.wait_for(anext(pieces), 5) == data[:KIB]
    sent_rest.set()
    assert b"".join([p async for p in pieces]) == data[KIB : 3 * KIB]


async def test_the_cache_keeps_files_up_to_its_limit_evicting_the_least_recently_used(
    net: Network,
) -> None:
    files = {name: hashlib.shake_256(name.encode()).digest(100 * KIB) for name in "abc"}
    peer, client = await served(net, cache_bytes=250 * KIB)
    async with client as http:
        digests = {name: (await put(http, name, data))["sha256"] for name, data in files.items()}

        async def get(name: str) -> str:
            got = await http.get(f"/api/v1/files/{name}")
            assert got.status_code == 200 and got.content == files[name]
            return got.headers["x-chordshare-sources"]

        assert await get("a") and await get("b")  # fetched: from the store's holder
        assert await get("a") == ""  # a hit: "a" is now the most recently used
        assert await get("c")  # no room for it: "b", the least recently used, goes
        assert downloads(peer) == {digests["a"]: 100 * KIB, digests["c"]: 100 * KIB}
        text = (await http.get("/metrics")).text
        assert metric(text, "chordshare_api_cache_bytes") == 200 * KIB
        assert metric(text, "chordshare_api_cache_limit_bytes") == 250 * KIB
        assert metric(text, "chordshare_api_cache_evictions_total") == 1
        assert await get("a") == "" and await get("b")  # "b" fetched again, "c" goes
        assert set(downloads(peer)) == {digests["a"], digests["b"]}


@pytest.mark.parametrize("cache_bytes", [0, 50 * KIB])
async def test_a_file_the_cache_does_not_keep_is_streamed_from_its_holders(
    net: Network, cache_bytes: int
) -> None:
    data = hashlib.shake_256(b"streamed").digest(100 * KIB)
    peer, client = await served(net, cache_bytes=cache_bytes)
    async with client as http:
        await put(http, "big.bin", data)
        for _ in range(2):
            got = await http.get("/api/v1/files/big.bin")
            assert got.status_code == 200 and got.content == data
            assert got.headers["content-length"] == str(len(data))
            assert "x-chordshare-sources" not in got.headers  # streamed: not known up front
        assert downloads(peer) == {}


async def test_sources_name_what_this_request_fetched(net: Network) -> None:
    peers = await net.ring(3)
    data = hashlib.shake_256(b"sources").digest(MIB)
    async with await net.api(peers[0]) as a:
        await put(a, "shared.bin", data)
        await wait_until(lambda: holders(net, "shared.bin") == 3, 10, "3 copies")
        holder_addresses = {p.server.node.me.address for p in peers}
        first = await a.get("/api/v1/files/shared.bin")
        sources = dict(s.split("=") for s in first.headers["x-chordshare-sources"].split(","))
        assert set(sources) <= holder_addresses and sum(map(int, sources.values())) == len(data)
        again = await a.get("/api/v1/files/shared.bin")  # from the cache: nothing fetched
        assert again.content == data and again.headers["x-chordshare-sources"] == ""
        head = await a.head("/api/v1/files/shared.bin")
        assert head.headers["x-chordshare-sources"] == ""


def holders(net: Network, name: str) -> int:
    return sum(1 for p in net.peers if p.store.manifest(name) is not None)


async def test_a_range_of_a_cached_file_is_read_from_the_cache(net: Network) -> None:
    peers = await net.ring(4)
    data = hashlib.shake_256(b"cached range").digest(MIB)
    async with await net.api(peers[0]) as a:
        await put(a, "kept.bin", data)
        await wait_until(lambda: holders(net, "kept.bin") == 3, 10, "3 copies")
        stranger = next(p for p in peers if p.store.manifest("kept.bin") is None)
        async with await net.api(stranger) as http:
            assert (await http.get("/api/v1/files/kept.bin")).content == data  # now cached
            before = received(stranger)
            part = await http.get("/api/v1/files/kept.bin", headers={"Range": "bytes=5-9"})
            assert part.status_code == 206 and part.content == data[5:10]
            assert part.headers["x-chordshare-sources"] == ""
            assert received(stranger) == before


def test_the_cache_size_is_a_node_setting() -> None:
    def cache_of(**flags: str) -> int:
        return load_config(None, {"bind": "127.0.0.1:0", **flags}).api_cache

    assert cache_of() == DEFAULT_CACHE_BYTES == 1024**3
    assert cache_of(api_cache="2MiB") == 2 * MIB and cache_of(api_cache="0") == 0
    with pytest.raises(ConfigError, match="api_cache: 'lots' is not a size"):
        cache_of(api_cache="lots")
    node = [sys.executable, "-m", "chordshare.faces.cli", "node", "--bind", "127.0.0.1:0"]
    refused = subprocess.run(
        [*node, "--api-cache", "lots"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2 and "api_cache: 'lots' is not a size" in refused.stderr
