"""Whole peers with their REST API served, for the API tests: each `api(peer)` starts that
peer's API (open, or with the given token settings) and returns an HTTP client for it; a
`leave` through the API is recorded in `left` rather than stopping anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from peernet import PeerNetwork

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import OPEN, ApiAuth
from chordshare.sharing.peer import SharingPeer


class ApiNetwork(PeerNetwork):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.apis: list[ApiServer] = []
        self.left: list[str] = []

    async def api(self, peer: SharingPeer, auth: ApiAuth = OPEN) -> httpx.AsyncClient:
        server = ApiServer(peer, "127.0.0.1:0", lambda: self.left.append("left"), auth)
        self.apis.append(server)
        url = await server.start()
        return httpx.AsyncClient(base_url=url, timeout=30)

    async def close(self) -> None:
        for api in self.apis:
            await api.stop()
        await super().close()


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


async def call(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    """One request to an operation, with a name for a path parameter and a small body where
    one is expected (a refused request must not need a valid one)."""
    folder = path.startswith("/api/v1/folders/")
    url = path.replace("{name}", "kept" if folder else "kept.txt")
    if folder and method == "POST":
        files = {"file": ("intruder.txt", b"not welcome")}
        return await http.post(url, files=files, headers=headers)
    if path in {"/api/v1/files", "/upload_file"} and method == "POST":
        files = {"file": ("intruder.txt", b"not welcome")}
        return await http.post(url, files=files, headers=headers)
    if path in {"/download_file", "/search_file"}:
        return await http.post(url, json={"file_name": "kept.txt"}, headers=headers)
    params = {"key": "kept.txt"} if path == "/api/v1/lookup" else {}
    if path == "/api/v1/search":
        params = {"q": "kept"}
    if path == "/api/v1/link":
        params = {"name": "kept.txt"}
    if path == "/api/v1/link/file":  # a link the node gives, if it answers at all
        info = await http.get("/api/v1/link", params={"name": "kept.txt"}, headers=headers)
        if info.status_code != 200:
            return info
        params = {"link": info.json()["link"]}
    return await http.request(method, url, params=params, headers=headers)


def stored(peer: SharingPeer, name: str) -> bool:
    return peer.store.manifest(name) is not None
