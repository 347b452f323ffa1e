"""The transport as a node's procedures see it: calls that timed out are sent again before
the procedure hears that they failed (see `Retransmitting`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from chordshare.chord.messages import Call, ConfirmOwner, FindStep, Ping, Reply
from chordshare.node.tasks import drop
from chordshare.transport.base import Hello, PeerError, Transport

log = logging.getLogger(__name__)

RETRANSMITS = 2  # a call that timed out is sent again this often, its deadline doubled each


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
    that verdict: it hears of a failure after one step deadline (a few of the peer's round
    trips, `PeerHealth.deadline`) and goes on, while the retransmissions run on in the
    background with the same deadline (a hung peer would otherwise cost every lookup that
    met it first 0.7 s, and one that met two of them more than the 1 s a lookup may take).
    A peer they do not hear either is handed to `gave_up`, whose probes wait its whole
    backed-off deadline. The last owner candidate still waits: there is nobody left to
    ask. A check (`Ping.check`: a lookup whose candidate is this node checks a node it
    could not reach) is sent once, with a check's deadline."""

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
        if isinstance(call, Ping) and call.check:  # someone waits on it: once
            return await self._call(call, retries=0)
        if not (isinstance(call, FindStep | ConfirmOwner) and call.fallback):
            return await self._call(call)
        # The first send is awaited here, not in a task of its own: nearly every call is
        # answered, and a task per call costs more than the rest of the call's Python.
        address = call.peer.address
        suspected = address in self.health
        # A confirmation told of nodes we could not reach waits for the callee's checks of
        # them; the same question without them, which a running callee answers at once,
        # tells a stopped callee from a checking one within a step's deadline.
        probe = _without_checks(call)
        try:
            if probe is None:
                return await self._send(call)
            return await self._watched(call, probe)
        except _TimedOut as late:
            if suspected or late.deadline >= self.health.ceiling:
                self.gave_up(address)
                raise late.error from None
            # The retransmissions settle its standing in the background. They keep the
            # step's deadline: waiting the whole backed-off one would double it towards
            # the ceiling, which every later call to a frozen peer then waits out.
            task = asyncio.ensure_future(self._call(probe or call, RETRANSMITS - 1))
            self._verdicts.add(task)
            task.add_done_callback(self._settled)
            reason = f"did not answer a lookup step in {late.deadline:.3f} s"
            raise PeerError(address, reason) from None

    async def _watched(self, call: Call, probe: Call) -> Reply:
        """The confirmation, waited for only while the probe beside it is answered."""
        confirm = asyncio.ensure_future(self._send(call))
        checking = asyncio.ensure_future(self._send(probe))
        try:
            await asyncio.wait((confirm, checking), return_when=asyncio.FIRST_COMPLETED)
            if not confirm.done():
                checking.result()  # a probe that failed ends the wait; one answered does not
            return await confirm
        finally:
            drop((confirm, checking))  # the one that counts was raised or returned above

    def _settled(self, task: asyncio.Task[Reply]) -> None:
        self._verdicts.discard(task)
        if not task.cancelled():
            task.exception()  # a failure is the verdict, already recorded: not an error here

    async def _call(self, call: Call, retries: int | None = None) -> Reply:
        """Send the call, and again up to `retries` times (default: RETRANSMITS, none to a
        suspected peer) while it times out."""
        address = call.peer.address
        if retries is None:
            retries = 0 if address in self.health else RETRANSMITS
        while True:
            try:
                return await self._send(call)
            except _TimedOut as late:
                if retries == 0 or late.deadline >= self.health.ceiling:
                    self.gave_up(address)
                    raise late.error from None
                retries -= 1
                log.debug("%s did not answer in %.3f s: sent again", address, late.deadline)

    async def _send(self, call: Call) -> Reply:
        """One send, with the peer's current deadline; sent again only when this node was
        paused meanwhile. A failure that waited out the deadline raises _TimedOut (a
        refusal or a bad answer comes at once, and is raised as it is)."""
        while True:
            deadline = self.health.deadline(call)
            started = time.monotonic()
            try:
                return await self.transport.call(call, deadline)
            except PeerError as err:
                if self.paused_since(started):
                    continue
                if time.monotonic() - started >= 0.9 * deadline:
                    raise _TimedOut(err, deadline) from None
                raise


def _without_checks(call: Call) -> Call | None:
    """The call without the nodes the callee would check first; None if it has none."""
    if isinstance(call, ConfirmOwner) and call.unreachable:
        return dataclasses.replace(call, unreachable=())
    return None


class _TimedOut(Exception):
    def __init__(self, error: PeerError, deadline: float) -> None:
        super().__init__(str(error))
        self.error, self.deadline = error, deadline
