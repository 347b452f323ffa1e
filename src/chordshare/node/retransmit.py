"""The transport as a node's procedures see it: calls that timed out are sent again before
the procedure hears that they failed (see `Retransmitting`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chordshare.chord.messages import Call, FindStep, Reply
from chordshare.transport.base import Hello, PeerError, Transport

log = logging.getLogger(__name__)

RETRANSMITS = 2  # a call that timed out is sent again this often, its deadline doubled each
# A lookup step goes on without a peer that has not answered within its deadline times this
# (a little over one deadline: the call itself gives up at the deadline, and is sent again).
STEP_PATIENCE = 1.05


class Retransmitting:
    """The transport as the node's procedures see it: a call to a peer that timed out is
    sent again, up to RETRANSMITS times, each time with the peer's deadline backed off (RFC
    6298 §5.5; the health registry doubles it on every timeout), before the procedure hears
    that it failed. The procedures take a failed call for a dead peer: stabilize drops it,
    a lookup passes over it to its successor (which then names the wrong owner). A timeout
    alone is no proof of that: the peer's round trip may have jumped past a deadline that
    was computed from what it used to be (a slow link, a busy host), and the answer to the
    retransmission is the sample that teaches the new deadline. A refusal is not retried,
    nor a call to a peer already suspected (lookups route around those, and the probes of
    `ChordNode.probe_suspects` find them alive again), so a dead peer costs a dead-host
    detection of deadline·(1 + 2 + 4) once, then nothing.

    A lookup step that has other hops to try (`FindStep.fallback`; a join's first step
    has none) does not wait for that verdict: it hears of a failure after one deadline and
    goes on, while the retransmissions run on in the
    background and settle the peer's standing (a hung peer would otherwise cost every
    lookup that met it first 0.7 s, and one that met two of them more than the 1 s a lookup
    may take). The answer that names the owner (a Ping) still waits: passing over a slow
    owner would name the wrong one."""

    def __init__(
        self, transport: Transport, gave_up: Callable[[str], None] = lambda address: None
    ) -> None:
        self.transport = transport
        self.health = transport.health
        self.gave_up = gave_up  # told of a peer that timed out every time
        self._verdicts: set[asyncio.Task[Reply]] = set()  # steps a lookup stopped waiting for

    async def hello(self, address: str, deadline: float) -> Hello:
        return await self.transport.hello(address, deadline)

    async def close(self) -> None:
        for task in list(self._verdicts):
            task.cancel()
        await asyncio.gather(*self._verdicts, return_exceptions=True)
        await self.transport.close()

    async def call(self, call: Call) -> Reply:
        if not isinstance(call, FindStep) or not call.fallback:
            return await self._call(call)
        deadline = self.health.timeout_for(call.peer.address)
        task = asyncio.ensure_future(self._call(call))
        done, _ = await asyncio.wait({task}, timeout=deadline * STEP_PATIENCE)
        if task in done:
            return task.result()
        self._verdicts.add(task)
        task.add_done_callback(self._settled)
        raise PeerError(call.peer.address, f"did not answer a lookup step in {deadline:.3f} s")

    def _settled(self, task: asyncio.Task[Reply]) -> None:
        self._verdicts.discard(task)
        if not task.cancelled():
            task.exception()  # a failure is the verdict, already recorded: not an error here

    async def _call(self, call: Call) -> Reply:
        health = self.transport.health
        address = call.peer.address
        retries = 0 if address in health else RETRANSMITS
        while True:
            deadline = health.timeout_for(address)
            started = time.monotonic()
            try:
                return await self.transport.call(call)
            except PeerError:
                # It waited out its deadline (a refusal or a bad answer comes at once).
                timed_out = time.monotonic() - started >= 0.9 * deadline
                if retries == 0 or not timed_out or deadline >= health.ceiling:
                    if timed_out:
                        self.gave_up(address)
                    raise
                retries -= 1
                log.debug("%s did not answer in %.3f s: sent again", address, deadline)
