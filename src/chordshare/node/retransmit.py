"""The transport as a node's procedures see it: calls that timed out are sent again before
the procedure hears that they failed (see `Retransmitting`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chordshare.chord.messages import Call, ConfirmOwner, FindStep, Reply
from chordshare.transport.base import Hello, PeerError, Transport
from chordshare.transport.health import PeerHealth

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
    has none), or an owner candidate with another after it (`ConfirmOwner.fallback`: that
    one is told this one could not be reached, and checks it itself), does not wait for
    that verdict: it hears of a failure after one deadline and
    goes on, while the retransmissions run on in the
    background and settle the peer's standing (a hung peer would otherwise cost every
    lookup that met it first 0.7 s, and one that met two of them more than the 1 s a lookup
    may take). The last owner candidate still waits: there is nobody left to ask."""

    def __init__(
        self,
        transport: Transport,
        gave_up: Callable[[str], None] = lambda address: None,
        paused_since: Callable[[float], bool] = lambda moment: False,
    ) -> None:
        self.transport = transport
        self.health = transport.health
        self.gave_up = gave_up  # told of a peer that timed out every time
        # Whether this node was paused after a moment: a call that ran out its deadline
        # while the node stood still says nothing of its peer, and is sent again.
        self.paused_since = paused_since
        self._verdicts: set[asyncio.Task[Reply]] = set()  # steps a lookup stopped waiting for

    async def hello(self, address: str, deadline: float) -> Hello:
        return await self.transport.hello(address, deadline)

    async def close(self) -> None:
        for task in list(self._verdicts):
            task.cancel()
        await asyncio.gather(*self._verdicts, return_exceptions=True)
        await self.transport.close()

    async def call(self, call: Call) -> Reply:
        if not isinstance(call, FindStep | ConfirmOwner) or not call.fallback:
            return await self._call(call)
        deadline = _deadline(self.health, call)
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
            deadline = _deadline(health, call)
            started = time.monotonic()
            try:
                return await self.transport.call(call)
            except PeerError:
                if self.paused_since(started):
                    continue
                # It waited out its deadline (a refusal or a bad answer comes at once).
                timed_out = time.monotonic() - started >= 0.9 * deadline
                if retries == 0 or not timed_out or deadline >= health.ceiling:
                    if timed_out:
                        self.gave_up(address)
                    raise
                retries -= 1
                log.debug("%s did not answer in %.3f s: sent again", address, deadline)


def _deadline(health: PeerHealth, call: Call) -> float:
    if isinstance(call, ConfirmOwner) and call.unreachable:
        return health.timeout_for_check(call.peer.address)
    return health.timeout_for(call.peer.address)
