"""Runs a protocol procedure (a generator of calls) over an async transport."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterable
from typing import TypeVar

from chordshare.chord.messages import Ack, Call, NodeRef, Pause, Ping, Pong, Reply, Unreachable
from chordshare.node.tasks import drop
from chordshare.transport.base import Caller, Hello, PeerError, Transport
from chordshare.transport.health import PeerHealth

T = TypeVar("T")


async def drive(procedure: Generator[Call, Reply, T], transport: Caller) -> T:
    """Send each call the procedure yields and feed it the reply; a failed call becomes
    `Unreachable`, which the core treats as a dead peer. A Pause is waited out here."""
    try:
        call = next(procedure)
        while True:
            reply: Reply
            if isinstance(call, Pause):
                await asyncio.sleep(call.seconds)
                reply = Ack()
            else:
                try:
                    reply = await transport.call(call)
                except PeerError as err:
                    reply = Unreachable(call.peer, err.reason, err.refused)
            call = procedure.send(reply)
    except StopIteration as done:
        return done.value


class CheckingPings:
    """The calls of a node's answer to a ConfirmOwner: a Ping, the check of a peer the
    asker could not reach, is one call (no retransmission: the asker is waiting) with a
    check's deadline (`Ping.check`); any other goes over `calls` (the node's own)."""

    def __init__(self, transport: Transport, calls: Caller) -> None:
        self.transport, self.calls = transport, calls
        self.health: PeerHealth = transport.health

    async def call(self, call: Call) -> Reply:
        if not isinstance(call, Ping):
            return await self.calls.call(call)
        hello = await self.transport.hello(call.peer.address, self.health.deadline(call))
        return Pong(hello.node)

    async def answer(
        self, procedure: Generator[Call, Reply, T], ahead: Iterable[NodeRef] = ()
    ) -> T:
        """Drive an answer whose checks will likely be Pings of `ahead`, in that order: they
        go out together, so checking several silent nodes takes one check's time, not the
        sum of them, and the answer reads each when it gets to it."""
        pings = {
            node.address: asyncio.ensure_future(self.call(Ping(node, check=True))) for node in ahead
        }
        try:
            return await drive(procedure, _PingedAhead(self, pings))
        finally:
            drop(pings.values())  # checks the answer did not need

    async def hello(self, address: str, deadline: float) -> Hello:
        return await self.transport.hello(address, deadline)

    async def close(self) -> None:
        await self.transport.close()


class _PingedAhead:
    def __init__(self, checking: CheckingPings, pings: dict[str, asyncio.Task[Reply]]) -> None:
        self.checking, self.pings = checking, pings

    async def call(self, call: Call) -> Reply:
        ping = self.pings.pop(call.peer.address, None) if isinstance(call, Ping) else None
        return await (ping if ping is not None else self.checking.call(call))
