"""Finding the ring again: a node left alone rejoins, and rings split by a partition merge.

A node remembers the peers it routed through. If it ever finds itself alone (every pointer
dropped, e.g. while its host was cut off), it joins again through whichever of them answers,
at growing intervals. Peers dropped from its view are kept in a passive list and probed now
and then: one that answers and is on another ring is where a merge starts (see
`chord.merge` and docs/protocol.md).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from chordshare.chord import procedures
from chordshare.chord.lookup import LookupFailed
from chordshare.chord.merge import PassiveList, Verdict
from chordshare.chord.messages import NodeRef
from chordshare.chord.procedures import JoinFailed
from chordshare.chord.state import DuplicateIdError, RoutingState
from chordshare.node.driver import drive
from chordshare.node.retransmit import Retransmitting
from chordshare.transport.base import PeerError

log = logging.getLogger(__name__)

REMEMBERED_PEERS = 32
REJOIN_FIRST_WAIT = 1.0  # seconds between rejoin attempts of a node left alone, doubling...
REJOIN_MAX_WAIT = 30.0  # ...up to this
REJOIN_TRIES = 4  # remembered peers asked per attempt
REJOIN_DEADLINE = 1.0


@dataclass
class Reunion:
    """What one node keeps to find its ring again, and the two ways it does."""

    state: RoutingState
    calls: Retransmitting
    bootstrap: str | None = None  # the address joined through, to rejoin by
    # Peers this node has routed through, most recent last.
    remembered: dict[str, NodeRef] = field(default_factory=dict)
    # Peers dropped from the view, probed now and then for a ring across a healed partition.
    passive: PassiveList = field(default_factory=PassiveList)
    merge_probes: int = 0  # peers probed for another ring (they answered)
    _next_rejoin: float = 0.0
    _rejoin_wait: float = REJOIN_FIRST_WAIT
    _rng: random.Random = field(default_factory=random.Random)

    @property
    def me(self) -> NodeRef:
        return self.state.me

    def observe(self) -> None:
        """Note the peers of the current view: remembered, and out of the passive list."""
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
        self.passive.observe(state.known_peers(), time.monotonic())

    def alone(self) -> bool:
        return self.state.successor == self.me and self.state.predecessor in (None, self.me)

    async def rejoin_if_alone(self) -> bool:
        """A node that was on a ring with others and now has no pointer left joins again
        through a peer it knew, or the address it first joined through. Returns whether it
        rejoined. Tries at growing intervals, so a node really left alone costs little."""
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
        transport = self.calls.transport
        for address in candidates[:REJOIN_TRIES]:
            try:
                hello = await transport.hello(address, REJOIN_DEADLINE)
            except PeerError:
                continue
            if hello.bits != self.state.space.bits or not hello.joined or hello.node == self.me:
                continue
            try:
                await drive(procedures.join(self.state, hello.node, transport.health), self.calls)
            except (DuplicateIdError, LookupFailed, JoinFailed) as err:
                log.info("node %s: rejoining through %s failed: %s", self.me.id, address, err)
                continue
            log.info("node %s was alone; rejoined the ring through %s", self.me.id, address)
            self._rejoin_wait = REJOIN_FIRST_WAIT
            return True
        return False

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
        transport = self.calls.transport
        try:
            hello = await transport.hello(address, REJOIN_DEADLINE)
        except PeerError:
            return False  # still cut off (or gone): it ages out of the passive list
        peer = hello.node
        if peer.address == self.me.address:
            return False
        if hello.bits != self.state.space.bits or not hello.joined:
            return False
        if any(n.address == peer.address for n in self.state.known_peers()):
            self.passive.discard(address)
            return False
        self.merge_probes += 1
        before = self.state.successor
        result = await drive(procedures.merge(self.state, peer, transport.health), self.calls)
        if result.verdict is Verdict.SAME_RING:
            self.passive.discard(address)  # on our ring: nothing to merge through it
        if not result.adopted:
            return False
        log.info(
            "node %s: ring merge through %s: successor %s -> %s",
            self.me.id,
            address,
            before.address,
            self.state.successor.address,
        )
        return True
