"""One Chord node at run time: its routing state, driven over a transport.

The node answers peers' calls from its state, joins or creates a ring, runs the maintenance
loops (stabilize, fix fingers, check predecessor) with jitter, looks keys up and leaves
gracefully. It knows nothing of gRPC servers: `node.server` serves it; tests can run many
of them on the in-memory transport. No lock is ever held across a remote call: procedures
re-read the state after every reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chordshare.chord import ownership, procedures
from chordshare.chord.lookup import LookupFailed, LookupResult, find_successor
from chordshare.chord.membership import DEFAULT_CAP
from chordshare.chord.merge import PassiveList
from chordshare.chord.messages import Call, Claim, ConfirmOwner, NodeRef, OwnerAnswer, Reply
from chordshare.chord.procedures import JoinFailed
from chordshare.chord.state import DEFAULT_SUCCESSORS, DuplicateIdError, RoutingState
from chordshare.ids import IdSpace
from chordshare.node.driver import CheckingPings, drive
from chordshare.node.hints import MemberHints
from chordshare.node.pauses import PauseWatch
from chordshare.node.probes import SuspectProbes
from chordshare.node.retransmit import Retransmitting
from chordshare.node.reunion import Reunion
from chordshare.node.shortage import SHORTAGES
from chordshare.node.tasks import NodeTasks
from chordshare.transport.base import IncompatiblePeer, PeerError, Transport
from chordshare.transport.health import HeardWithin, PeerHealth

log = logging.getLogger(__name__)

MERGE_EVERY = 10  # stabilize periods between two merge probes, unless Timing.merge says
# A node that stood still this many check-predecessor periods (and at least a second) was
# paused: its neighbours have taken it for dead by then.
PAUSE_PERIODS = 2
# A peer is taken for alive while it spoke this many stabilize periods ago: one notify
# late by two of TCP's retransmissions (0.2 + 0.4 s) is no silence yet.
ALIVE_PERIODS = 3
# The same on a link found lossy (`PeerHealth.heard_within`): TCP's timer may have backed
# off three times.
LOSSY_PERIODS = 8
# How long a node that took a silent predecessor's keys keeps probing it.
ABSORBED_TTL = 600.0
RECLAIMS_PER_STABILIZE = 5  # probes of silent predecessors per stabilize period
CHECKED_WAIT = 1.0  # how long a lookup waits for a node's view to be checked after a pause


class JoinError(Exception):
    """The node could not join the ring it was pointed at; the message says why."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Maintenance periods in seconds; each wait is jittered by ±`jitter` of its period so
    nodes started together do not stabilize in lockstep."""

    stabilize: float = 0.5
    check_predecessor: float = 1.0
    fix_fingers: float = 2.0
    jitter: float = 0.25
    join_deadline: float = 5.0
    merge: float | None = None  # between ring-merge probes; None: MERGE_EVERY stabilizes

    @property
    def merge_period(self) -> float:
        return self.merge if self.merge is not None else self.stabilize * MERGE_EVERY

    def heard(self, health: PeerHealth) -> HeardWithin:
        """The peers taken for alive when a call to them fails: those that answered or
        called us in the last ALIVE_PERIODS stabilize periods (a node notifies its successor
        every period), or LOSSY_PERIODS for one that came back from a silence a while ago."""
        return health.heard_within(ALIVE_PERIODS * self.stabilize, LOSSY_PERIODS * self.stabilize)

    @property
    def pause_window(self) -> float:
        return max(1.0, PAUSE_PERIODS * self.check_predecessor)


@dataclass
class NodeStats:
    """What the metrics face reports about the node's own work."""

    hops: Counter[int] = field(default_factory=Counter)  # lookups by the hops they took
    lookup_failures: int = 0
    maintenance_failures: Counter[str] = field(default_factory=Counter)  # by loop
    successor_changes: int = 0
    stabilize_failures: int = 0  # rounds that found the successor dead and moved past it
    merge_probes: int = 0  # peers probed for another ring (they answered)
    merges: int = 0  # probes that found a closer successor on another ring and adopted it
    hand_backs: int = 0  # silent predecessors that answered again and got their keys back


class ChordNode:
    def __init__(
        self,
        me: NodeRef,
        space: IdSpace,
        transport: Transport,
        successors: int = DEFAULT_SUCCESSORS,
        timing: Timing | None = None,
        tasks: NodeTasks | None = None,
        hint_cap: int = DEFAULT_CAP,
    ) -> None:
        self.space = space
        # The node's long-lived tasks: those of whoever serves it, else its own.
        self.tasks = tasks or NodeTasks()
        self._own_tasks = tasks is None
        self.state = RoutingState(me, space, successors)
        self.transport = transport
        self.timing = timing or Timing()
        self.pauses = PauseWatch(
            self.state, transport.health, self.timing.pause_window, self._paused
        )
        # Full membership as lookup hints, carried by the transport (hint_cap 0: off).
        self.hints = MemberHints(self.state, hint_cap) if hint_cap > 0 else None
        transport.gossip = self.hints
        down = self.hints.unreachable if self.hints is not None else lambda address: None
        self.probes = SuspectProbes(transport, self.tasks, down)
        # What procedures are driven over; a peer that timed out every time is probed at
        # once, so if it was only slow its suspicion lasts about one of its round trips.
        self.calls = Retransmitting(transport, self.probes.start, self.pauses.paused_since)
        self._checking = CheckingPings(transport, self.calls)
        self.joined = False
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random()
        self._joined_callbacks: list[Callable[[bool], Awaitable[None]]] = []
        self._leaving_callbacks: list[Callable[[], Awaitable[None]]] = []
        self.stats = NodeStats()
        self.reunion = Reunion(self.state, self.calls)
        self._recheck: asyncio.Task[None] | None = None

    @property
    def me(self) -> NodeRef:
        return self.state.me

    @property
    def bootstrap(self) -> str | None:
        return self.reunion.bootstrap

    @property
    def passive(self) -> PassiveList:
        return self.reunion.passive

    def on_membership(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Call back with True once the node is on a ring, False when it leaves."""
        self._joined_callbacks.append(callback)

    def on_leaving(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call back before a graceful leave, while the node still serves and routes
        (file sharing hands its keys to the successor then)."""
        self._leaving_callbacks.append(callback)

    async def _set_joined(self, joined: bool) -> None:
        self.joined = joined
        for callback in self._joined_callbacks:
            await callback(joined)

    # Answering peers.

    async def handle(self, call: Call) -> Reply:
        health = self.transport.health
        if isinstance(call, ConfirmOwner):
            unchecked = self.unchecked()
            ahead = ownership.checks(self.state, call, unchecked)
            if isinstance(ahead, OwnerAnswer):
                return ahead
            now, heard = time.monotonic(), self.timing.heard(health)
            answer = procedures.answer(self.state, call, health, unchecked, now, heard)
            return await self._checking.answer(answer, ahead)
        return procedures.handle(self.state, call, health)

    def heard_from(self, address: str) -> None:
        """A peer called us: it runs, and gets back any keys we took while it was silent."""
        if address and address != self.me.address:
            self.transport.health.record_answer(address)
            if self.state.absorbed and self.state.called_by(address):
                self._handed_back()

    def claim(self, key: int) -> Claim:
        """Whether this node owns key, for a request that must reach the owner."""
        return ownership.claim(self.state, key, self.unchecked())

    # Pauses (see chord.freshness and node.pauses).

    def unchecked(self) -> bool:
        """Whether this node's view is unchecked since it was last paused."""
        return self.pauses.unchecked()

    def _paused(self) -> None:
        if self._tasks and (self._recheck is None or self._recheck.done()):
            self._recheck = self.tasks.start(self._check_view(), "check view")

    async def _check_view(self) -> None:
        """Right after a pause: tell the successor we are back (it took our keys while we
        stood still), and hear from both neighbours."""
        await self.stabilize()
        await self.check_predecessor()

    async def _wait_checked(self) -> None:
        recheck = self._recheck
        if recheck is not None and not recheck.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(recheck), CHECKED_WAIT)

    # Joining, looking up, leaving.

    async def create(self) -> None:
        """Start a new ring with this node alone on it."""
        await self._set_joined(True)
        await self._start_maintenance()
        log.info("node %s created a ring at %s", self.me.id, self.me.address)

    async def join(self, bootstrap: str) -> None:
        """Join the ring the node at `bootstrap` is on; JoinError says why not."""
        self.reunion.bootstrap = bootstrap
        try:
            hello = await self.transport.hello(bootstrap, self.timing.join_deadline)
        except IncompatiblePeer as err:
            raise JoinError(err.reason) from None
        except PeerError as err:
            raise JoinError(f"cannot reach {bootstrap} to join: {err.reason}") from None
        if hello.bits != self.space.bits:
            raise JoinError(
                f"the ring at {bootstrap} uses {hello.bits}-bit ids, "
                f"this node {self.space.bits}-bit ids (--bits)"
            )
        if hello.node.address == self.me.address:
            raise JoinError(f"{bootstrap} is this node itself; --join needs another node")
        if not hello.joined:
            raise JoinError(f"{bootstrap} is not on a ring yet")
        try:
            async with asyncio.timeout(self.timing.join_deadline * 4):
                await drive(
                    procedures.join(self.state, hello.node, self.transport.health),
                    self.calls,
                )
        except DuplicateIdError as err:
            raise JoinError(f"cannot join: {err}") from None
        except (LookupFailed, JoinFailed) as err:
            raise JoinError(f"cannot join through {bootstrap}: {err}") from None
        except TimeoutError:
            raise JoinError(f"joining through {bootstrap} took too long") from None
        await self._set_joined(True)
        # Fill the finger table at once so the node routes in O(log N) from the start.
        await self.fix_fingers()
        await self._start_maintenance()
        log.info(
            "node %s joined through %s; successor %s",
            self.me.id,
            bootstrap,
            self.state.successor.address,
        )

    async def lookup(self, key: int) -> LookupResult:
        """Find the node that owns key (raises LookupFailed). The result leaves `after`
        empty: the owner is not asked for the nodes after it."""
        if self.unchecked():
            await self._wait_checked()
        try:
            health = self.transport.health
            heard = self.timing.heard(health)
            hint = self.hints.owner_hint(key) if self.hints is not None else None
            lookup = find_successor(self.state, key, health, heard=heard, hint=hint, brief=True)
            result = await drive(lookup, self.calls)
        except LookupFailed:
            self.stats.lookup_failures += 1
            raise
        self.stats.hops[result.hops] += 1
        return result

    async def leave(self) -> None:
        """Leave gracefully: neighbours are relinked before we go."""
        await self.stop_maintenance()
        if self.joined:
            for callback in self._leaving_callbacks:
                try:
                    await callback()
                except Exception:  # a failed handoff must not keep the node from leaving
                    log.exception("node %s: before-leave step failed", self.me.id)
            if self.hints is not None:
                self.hints.leave()  # the leave notices carry it
            await drive(procedures.leave(self.state), self.calls)
            await self._set_joined(False)
            log.info("node %s left the ring", self.me.id)
        if self._own_tasks:
            await self.tasks.close()

    # Maintenance.

    async def rejoin_if_alone(self) -> bool:
        rejoined = await self.reunion.rejoin_if_alone()
        if rejoined:
            await self.fix_fingers()
        return rejoined

    async def stabilize(self) -> None:
        await self.rejoin_if_alone()
        before = self.state.successor
        await drive(procedures.stabilize(self.state, self.transport.health), self.calls)
        self.reunion.observe()
        if self.hints is not None:
            self.hints.maintain()
        if self.state.successor != before:
            self.stats.successor_changes += 1
            if before.address in self.transport.health:
                self.stats.stabilize_failures += 1  # the successor did not answer

    async def check_predecessor(self) -> None:
        heard = self.timing.heard(self.transport.health)
        listened = self.pauses.listened_for(ALIVE_PERIODS * self.timing.stabilize)
        checking = procedures.check_predecessor(self.state, time.monotonic(), heard, listened)
        await drive(checking, self.calls)
        self.reunion.observe()

    async def reclaim(self) -> None:
        """Probe the silent predecessors whose keys we took: one that answers gets them
        back at once, so a node that was only paused owns its keys again."""
        self.state.expire_absorbed(time.monotonic(), ABSORBED_TTL)
        if await drive(procedures.reclaim(self.state), self.calls):
            self._handed_back()

    def _handed_back(self) -> None:
        self.stats.hand_backs += 1
        log.info("node %s: predecessor %s answers again", self.me.id, self.state.predecessor)

    async def probe_suspects(self) -> None:
        """Ping every suspected peer (see `node.probes`)."""
        self.probes.probe_all()

    async def fix_fingers(self) -> None:
        await drive(procedures.fix_fingers(self.state, self.transport.health), self.calls)
        self.reunion.observe()

    async def probe_for_merge(self) -> bool:
        """Probe one peer dropped from the view for a ring across a healed partition
        (`Reunion.probe_for_merge`); returns whether a successor was adopted."""
        probes = self.reunion.merge_probes
        adopted = await self.reunion.probe_for_merge()
        self.stats.merge_probes += self.reunion.merge_probes - probes
        if adopted:
            self.stats.merges += 1
            self.stats.successor_changes += 1
        return adopted

    async def _start_maintenance(self) -> None:
        if self._tasks:
            return
        await self.tasks.open()
        loops: tuple[tuple[float, Callable[[], Awaitable[object]]], ...] = (
            (self.timing.stabilize, self.stabilize),
            (self.timing.check_predecessor, self.check_predecessor),
            (self.timing.fix_fingers, self.fix_fingers),
            (self.timing.merge_period, self.probe_for_merge),
            (self.timing.stabilize, self.probe_suspects),
            # Often: a probe that timed out leaves a gap until the next one, and a node
            # that resumes in it waits that long for its keys.
            (self.timing.stabilize / RECLAIMS_PER_STABILIZE, self.reclaim),
            (self.timing.pause_window / 4, self._watch_clock),
        )
        self.probes.running = True
        self._tasks = [
            self.tasks.start(self._every(period, action), action.__name__)
            for period, action in loops
        ]

    async def _every(self, period: float, action: Callable[[], Awaitable[object]]) -> None:
        jitter = self.timing.jitter
        while True:
            await asyncio.sleep(period * self._rng.uniform(1 - jitter, 1 + jitter))
            name = getattr(action, "__name__", "")
            try:  # a shortage of open files is said once, not in a traceback a round
                await SHORTAGES.round(name, action())
            except Exception:  # a maintenance round must never kill the loop
                self.stats.maintenance_failures[name] += 1
                log.exception("node %s: %s failed", self.me.id, name)

    async def _watch_clock(self) -> None:
        self.pauses.tick()

    async def stop_maintenance(self) -> None:
        tasks, self._tasks = self._tasks, []
        tasks += self.probes.stop()
        if self._recheck is not None:
            tasks.append(self._recheck)
            self._recheck = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
