"""An in-memory transport: many node runtimes in one event loop, no sockets.

For fast runtime tests. A `MemoryNetwork` maps addresses to whatever answers calls there;
a test can kill an address (calls fail at once, like a refused connection) or freeze it
(calls hang until the caller's deadline, like a host cut off or a `kill -STOP`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from chordshare.chord.messages import Call, NodeRef, Ping, Pong, Reply
from chordshare.ids import IdSpace
from chordshare.transport.base import Hello, PeerError
from chordshare.transport.health import PeerHealth


class Answerer(Protocol):
    space: IdSpace
    joined: bool

    async def handle(self, call: Call) -> Reply: ...


class MemoryNetwork:
    def __init__(self) -> None:
        self.nodes: dict[str, Answerer] = {}
        self.frozen: set[str] = set()

    def attach(self, address: str, node: Answerer) -> None:
        self.nodes[address] = node
        self.frozen.discard(address)

    def kill(self, address: str) -> None:
        self.nodes.pop(address, None)

    def freeze(self, address: str) -> None:
        self.frozen.add(address)

    def thaw(self, address: str) -> None:
        self.frozen.discard(address)


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, health: PeerHealth | None = None) -> None:
        self.network = network
        self.health = health or PeerHealth()

    async def _target(self, address: str, wait: float) -> Answerer:
        if address in self.network.frozen:
            await asyncio.sleep(wait)
            self.health.record_failure(address)
            raise PeerError(address, "did not answer in time")
        node = self.network.nodes.get(address)
        if node is None:
            self.health.record_failure(address)
            raise PeerError(address, "connection refused")
        return node

    async def call(self, call: Call) -> Reply:
        address = call.peer.address
        started = time.monotonic()
        node = await self._target(address, self.health.timeout_for(address))
        reply = await node.handle(call)
        self.health.record_success(address, time.monotonic() - started)
        return reply

    async def hello(self, address: str, deadline: float) -> Hello:
        started = time.monotonic()
        node = await self._target(address, deadline)
        pong = await node.handle(Ping(NodeRef(0, address)))
        assert isinstance(pong, Pong)
        self.health.record_success(address, time.monotonic() - started)
        return Hello(pong.node, node.space.bits, node.joined)

    async def close(self) -> None:
        return None
