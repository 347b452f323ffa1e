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

from chordshare.chord import procedures
from chordshare.chord.lookup import LookupFailed, LookupResult, find_successor
from chordshare.chord.merge import PassiveList, Verdict
from chordshare.chord.messages import Call, NodeRef, Reply
from chordshare.chord.procedures import JoinFailed
from chordshare.chord.state import DEFAULT_SUCCESSORS, DuplicateIdError, RoutingState
from chordshare.ids import IdSpace
from chordshare.node.driver import drive
from chordshare.node.retransmit import Retransmitting
from chordshare.node.shortage import SHORTAGES
from chordshare.node.tasks import NodeTasks
from chordshare.transport.base import IncompatiblePeer, PeerError, Transport

log = logging.getLogger(__name__)

REMEMBERED_PEERS = 32
REJOIN_FIRST_WAIT = 1.0  # seconds between rejoin attempts of a node left alone, doubling...
REJOIN_MAX_WAIT = 30.0  # ...up to this
REJOIN_TRIES = 4  # remembered peers asked per attempt
REJOIN_DEADLINE = 1.0
MERGE_EVERY = 10  # stabilize periods between two merge probes, unless Timing.merge says


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


class ChordNode:
    def __init__(
        self,
        me: NodeRef,
        space: IdSpace,
        transport: Transport,
        successors: int = DEFAULT_SUCCESSORS,
        timing: Timing | None = None,
        tasks: NodeTasks | None = None,
    ) -> None:
        self.space = space
        # The node's long-lived tasks: those of whoever serves it, else its own.
        self.tasks = tasks or NodeTasks()
        self._own_tasks = tasks is None
        self.state = RoutingState(me, space, successors)
        self.transport = transport
        # What procedures are driven over; a peer that timed out every time is probed at
        # once, so if it was only slow its suspicion lasts about one of its round trips.
        self.calls = Retransmitting(transport, self._start_probe)
        self.timing = timing or Timing()
        self.joined = False
        self._tasks: list[asyncio.Task[None]] = []
        self._probes: dict[str, asyncio.Task[None]] = {}  # suspects being probed, by address
        self._rng = random.Random()
        self._joined_callbacks: list[Callable[[bool], Awaitable[None]]] = []
        self._leaving_callbacks: list[Callable[[], Awaitable[None]]] = []
        self.stats = NodeStats()
        self.bootstrap: str | None = None  # the address joined through, to rejoin by
        # Peers this node has routed through, most recent last: if it ever finds itself
        # alone (every pointer dropped, e.g. while its host was cut off), it rejoins
        # through whichever of them answers again.
        self.remembered: dict[str, NodeRef] = {}
        self._next_rejoin = 0.0
        self._rejoin_wait = REJOIN_FIRST_WAIT
        # Peers dropped from the view, probed now and then for a ring across a healed
        # partition.
        self.passive = PassiveList()

    @property
    def me(self) -> NodeRef:
        return self.state.me

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
        return procedures.handle(self.state, call, self.transport.health)

    # Joining, looking up, leaving.

    async def create(self) -> None:
        """Start a new ring with this node alone on it."""
        await self._set_joined(True)
        await self._start_maintenance()
        log.info("node %s created a ring at %s", self.me.id, self.me.address)

    async def join(self, bootstrap: str) -> None:
        """Join the ring the node at `bootstrap` is on; JoinError says why not."""
        self.bootstrap = bootstrap
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
        """Find the node that owns key (raises LookupFailed)."""
        try:
            result = await drive(find_successor(self.state, key, self.transport.health), self.calls)
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
            await drive(procedures.leave(self.state), self.calls)
            await self._set_joined(False)
            log.info("node %s left the ring", self.me.id)
        if self._own_tasks:
            await self.tasks.close()

    # Maintenance.

    def _remember_neighbours(self) -> None:
        state = self.state
        seen = [*state.successors, *(f for f in state.fingers if f is not None)]
        if state.predecessor is not None:
            seen.append(state.predecessor)
        for peer in seen:
            if peer.address != self.me.address:
                self.remembered.pop(peer.address, None)
                self.remembered[peer.address] = peer
        while len(self.remembered) > REMEMBERED_PEERS:
            del self.remembered[next(iter(self.remembered))]

    def alone(self) -> bool:
        return self.state.successor == self.me and self.state.predecessor in (None, self.me)

    async def rejoin_if_alone(self) -> bool:
        """A node that was on a ring with others and now has no pointer left (its host was
        cut off long enough for it to drop every peer, and every peer to drop it) joins
        again through a peer it knew, or the address it first joined through. Returns
        whether it rejoined. Tries at growing intervals, so a node really left alone costs
        little."""
        now = time.monotonic()
        if not self.alone() or now < self._next_rejoin:
            return False
        candidates = list(reversed(self.remembered))
        if self.bootstrap is not None and self.bootstrap not in candidates:
            candidates.insert(0, self.bootstrap)
        if not candidates:
            return False
        self._next_rejoin = now + self._rejoin_wait
        self._rejoin_wait = min(self._rejoin_wait * 2, REJOIN_MAX_WAIT)
        for address in candidates[:REJOIN_TRIES]:
            try:
                hello = await self.transport.hello(address, REJOIN_DEADLINE)
            except PeerError:
                continue
            if hello.bits != self.space.bits or not hello.joined or hello.node == self.me:
                continue
            try:
                await drive(
                    procedures.join(self.state, hello.node, self.transport.health),
                    self.calls,
                )
            except (DuplicateIdError, LookupFailed, JoinFailed) as err:
                log.info("node %s: rejoining through %s failed: %s", self.me.id, address, err)
                continue
            log.info("node %s was alone; rejoined the ring through %s", self.me.id, address)
            self._rejoin_wait = REJOIN_FIRST_WAIT
            await self.fix_fingers()
            return True
        return False

    async def stabilize(self) -> None:
        await self.rejoin_if_alone()
        before = self.state.successor
        await drive(procedures.stabilize(self.state, self.transport.health), self.calls)
        self._remember_neighbours()
        self._observe_view()
        if self.state.successor != before:
            self.stats.successor_changes += 1
            if before.address in self.transport.health:
                self.stats.stabilize_failures += 1  # the successor did not answer

    async def check_predecessor(self) -> None:
        await drive(procedures.check_predecessor(self.state), self.calls)
        self._observe_view()

    async def probe_suspects(self) -> None:
        """Ping every suspected peer that is not being pinged already, each with its
        backed-off deadline (it doubles on every probe that times out, up to the ceiling).
        Lookups skip suspects, so a peer that was only slow, or was frozen and resumed,
        must be found alive again here rather than wait out its suspicion: it may own keys
        meanwhile. A probe waits long enough to hear a slow peer, and its answer is the
        round trip that sets the peer's deadline; the answer clears the suspicion.

        Runs every stabilize period without waiting for the probes: one peer that never
        answers holds up neither the loop nor the probes of the others."""
        for address in self.transport.health.suspected():
            self._start_probe(address)

    def _start_probe(self, address: str) -> None:
        if address not in self._probes and self._tasks:  # only while maintenance runs
            self._probes[address] = self.tasks.start(self._probe(address), f"probe {address}")

    async def _probe(self, address: str) -> None:
        try:
            await self.transport.hello(address, self.transport.health.timeout_for(address))
        except PeerError:
            pass  # still suspected: probed again next period, with a longer deadline
        finally:
            self._probes.pop(address, None)

    async def fix_fingers(self) -> None:
        await drive(procedures.fix_fingers(self.state, self.transport.health), self.calls)
        self._observe_view()

    # Ring merge after a partition (see chord/merge.py and docs/protocol.md).

    def _observe_view(self) -> None:
        self.passive.observe(self.state.known_peers(), time.monotonic())

    def merge_candidates(self) -> list[str]:
        """Addresses worth a merge probe: peers dropped from the view, and the address this
        node joined through, unless it is in the node's view."""
        candidates = [n.address for n in self.passive.candidates(time.monotonic())]
        view = {n.address for n in self.state.known_peers()}
        if self.bootstrap is not None and self.bootstrap not in view:
            candidates.append(self.bootstrap)
        return candidates

    async def probe_for_merge(self) -> bool:
        """Probe one merge candidate: if it answers and is not in our view, look our id up
        through it and adopt the answer when it is closer than our successor (a ring on
        the other side of a healed partition). Returns whether a successor was adopted.
        A node alone is left to `rejoin_if_alone`."""
        candidates = self.merge_candidates()
        if not candidates or self.alone():
            return False
        address = self._rng.choice(candidates)
        try:
            hello = await self.transport.hello(address, REJOIN_DEADLINE)
        except PeerError:
            return False  # still cut off (or gone): it ages out of the passive list
        peer = hello.node
        if hello.bits != self.space.bits or not hello.joined or peer.address == self.me.address:
            return False
        if any(n.address == peer.address for n in self.state.known_peers()):
            self.passive.discard(address)
            return False
        self.stats.merge_probes += 1
        before = self.state.successor
        result = await drive(procedures.merge(self.state, peer, self.transport.health), self.calls)
        if result.verdict is Verdict.SAME_RING:
            self.passive.discard(address)  # on our ring: nothing to merge through it
        if not result.adopted:
            return False
        self.stats.merges += 1
        self.stats.successor_changes += 1
        log.info(
            "node %s: ring merge through %s: successor %s -> %s",
            self.me.id,
            address,
            before.address,
            self.state.successor.address,
        )
        return True

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
        )
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

    async def stop_maintenance(self) -> None:
        tasks, self._tasks = self._tasks, []
        tasks += self._probes.values()
        self._probes = {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
