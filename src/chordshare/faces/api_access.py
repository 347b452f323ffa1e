"""What the routers of one node's REST API are handed (`NodeAccess`): how a request reaches
the node, its clients and the network's files, how an operation is documented (its errors,
and the token that guards it), and the operations two paths share (the API's own and the
seed project's alias)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import params

from chordshare.faces.api_errors import ApiError, error_responses
from chordshare.faces.shapes import entries_json, listing_json
from chordshare.files.names import keywords
from chordshare.transport.address import normalize_address
from chordshare.transport.base import PeerError

if TYPE_CHECKING:
    from chordshare.node.runtime import ChordNode
    from chordshare.sharing.client import FileClient
    from chordshare.transport.client import NodeClient

T = TypeVar("T")

# An operation's successful answers beside its default one, by status.
Answers = dict[int | str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class NodeAccess:
    """One node's API: `node` is the node on its ring (503 while it is not on one),
    `client` a NodeClient of it, `files` a FileClient for one request, `leave` asks the
    process to leave the ring and exit. `guard` checks the token (None: the API has none);
    `reads`: whether reading operations need it too (writing ones always do)."""

    node: Callable[[], ChordNode]
    client: Callable[[], NodeClient]
    files: Callable[[], FileClient]
    leave: Callable[[], None]
    guard: params.Depends | None
    reads: bool
    writes: bool = True

    def doc(self, guarded: bool, *errors: int, ok: Answers | None = None) -> dict[str, Any]:
        """An operation's dependencies and answers: its errors, 403 from the doors always,
        401 when the token guards it; `ok`: successful answers beside the default one."""
        protected = guarded and self.guard is not None
        statuses = {403, *errors} | ({401} if protected else set())
        answers = {**(ok or {}), **error_responses(*sorted(statuses))}
        return {"dependencies": [self.guard] if protected else [], "responses": answers}

    async def on_other_node(self, address: str, ask: Callable[[str], Awaitable[T]]) -> T:
        """Ask the node at a caller-given address: a malformed one is a 400, one where no
        node answers a 404 (the caller named it; nothing failed on our side)."""
        try:
            target = normalize_address(address)
        except ValueError as err:
            raise ApiError(400, "invalid_request", str(err)) from None
        try:
            return await ask(target)
        except PeerError as err:
            message = f"no node answers at {target}: {err.reason}"
            raise ApiError(404, "node_not_found", message) from None

    async def own_files(self) -> dict[str, Any]:
        own = self.node().me.address
        return listing_json(own, await self.files().list_node(own))

    async def search(self, q: str) -> dict[str, Any]:
        """The files with every word of `q` in their names; none for text without a word."""
        if not keywords(q):
            return {"files": []}
        return {"files": entries_json(await self.files().search(q))}

    async def start_leaving(self) -> dict[str, Any]:
        """Leave the ring once this answer is sent (503 when not on one)."""
        self.node()
        asyncio.get_running_loop().call_soon(self.leave)
        return {"leaving": True}
