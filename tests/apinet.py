"""Whole peers with their REST API served, for the API tests: each `api(peer)` starts that
peer's API (open, or with the given token settings) and returns an HTTP client for it; a
`leave` through the API is recorded in `left` rather than stopping anything."""

from __future__ import annotations

from pathlib import Path

import httpx
from peernet import PeerNetwork

from chordshare.faces.api import ApiServer
from chordshare.faces.api_auth import OPEN, ApiAuth
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
