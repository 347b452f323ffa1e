"""An in-memory transport: many node runtimes in one event loop, no sockets.

For fast runtime tests. A `MemoryNetwork` maps addresses to whatever answers calls there;
a test can kill an address (calls fail at once, like a refused connection), freeze it
(calls hang until the caller's deadline, like a `kill -STOP`: one thawed before that
deadline is answered then, as the kernel kept the request for the stopped process; the
frozen node's own calls wait for its thaw), or
partition the network into sides that cannot reach each other (calls across hang as to a
frozen address; a transport must know its own address for that).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from typing import Protocol

from chordshare.chord.messages import Call, NodeRef, Ping, Pong, Reply
from chordshare.ids import IdSpace
from chordshare.transport.base import GossipHook, Hello, PeerError
from chordshare.transport.health import PeerHealth


class Answerer(Protocol):
    space: IdSpace
    joined: bool
    hints: GossipHook | None

    async def handle(self, call: Call) -> Reply: ...


class MemoryNetwork:
    def __init__(self) -> None:
        self.nodes: dict[str, Answerer] = {}
        self.frozen: set[str] = set()
        self._thawed: dict[str, asyncio.Event] = {}  # set when a frozen address thaws
        self.sides: dict[str, int] = {}  # address -> side of the partition, while one lasts

    def attach(self, address: str, node: Answerer) -> None:
        self.nodes[address] = node
        self.frozen.discard(address)

    def kill(self, address: str) -> None:
        self.nodes.pop(address, None)

    def freeze(self, address: str) -> None:
        self.frozen.add(address)
        self._thawed.setdefault(address, asyncio.Event()).clear()

    def thaw(self, address: str) -> None:
        self.frozen.discard(address)
        thawed = self._thawed.pop(address, None)
        if thawed is not None:
            thawed.set()

    async def until_thawed(self, address: str, wait: float) -> bool:
        """Wait up to `wait` for a frozen address to thaw; whether it did."""
        thawed = self._thawed.setdefault(address, asyncio.Event())
        if wait == math.inf:
            await thawed.wait()
            return True
        try:
            await asyncio.wait_for(thawed.wait(), wait)
        except TimeoutError:
            return False
        return True

    def partition(self, *sides: Iterable[str]) -> None:
        """Cut the network: an address in one side cannot reach one in another (addresses
        in no side reach everyone), until `heal`."""
        self.sides = {address: i for i, side in enumerate(sides) for address in side}

    def heal(self) -> None:
        self.sides = {}

    def cut(self, origin: str | None, target: str) -> bool:
        """Whether a partition separates origin from target."""
        if origin is None or not self.sides:
            return False
        a, b = self.sides.get(origin), self.sides.get(target)
        return a is not None and b is not None and a != b


class MemoryTransport:
    def __init__(
        self, network: MemoryNetwork, health: PeerHealth | None = None, address: str | None = None
    ) -> None:
        self.network = network
        self.health = health or PeerHealth()
        self.address = address  # whose transport this is: for partitions and gossip
        self.gossip: GossipHook | None = None

    async def _target(self, address: str, wait: float) -> Answerer:
        network = self.network
        if self.address in network.frozen:  # a stopped process sends nothing until resumed
            await network.until_thawed(self.address, math.inf)
        if network.cut(self.address, address):  # the request is lost
            await asyncio.sleep(wait)
            answered = False
        else:
            answered = address not in network.frozen or await network.until_thawed(address, wait)
        if not answered:
            self.health.record_failure(address, wait)
            raise PeerError(address, "did not answer in time")
        node = self.network.nodes.get(address)
        if node is None:
            self.health.record_failure(address)
            if self.gossip is not None:
                self.gossip.unreachable(address)
            raise PeerError(address, "connection refused", refused=True)
        return node

    async def call(self, call: Call, deadline: float | None = None) -> Reply:
        address = call.peer.address
        started = time.monotonic()
        wait = self.health.deadline(call) if deadline is None else deadline
        node = await self._target(address, wait)
        ours, theirs, me = self.gossip, node.hints, self.address
        if ours is None or theirs is None or me is None:  # nothing rides along
            reply = await node.handle(call)
        else:
            asked = ours.to_send(address)
            theirs.received(me, asked)
            reply = await node.handle(call)
            ours.received(address, theirs.to_answer(me, asked))
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
