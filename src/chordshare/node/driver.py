"""Runs a protocol procedure (a generator of calls) over an async transport."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

from chordshare.chord.messages import Call, Reply, Unreachable
from chordshare.transport.base import PeerError, Transport

T = TypeVar("T")


async def drive(procedure: Generator[Call, Reply, T], transport: Transport) -> T:
    """Send each call the procedure yields and feed it the reply; a failed call becomes
    `Unreachable`, which the core treats as a dead peer."""
    try:
        call = next(procedure)
        while True:
            try:
                reply: Reply = await transport.call(call)
            except PeerError as err:
                reply = Unreachable(call.peer, err.reason)
            call = procedure.send(reply)
    except StopIteration as done:
        return done.value
