"""What a node knows about its peers' health: adaptive deadlines and suspicion.

Deadlines follow TCP's retransmission timer (RFC 6298): a smoothed round trip and its
variation per peer, deadline = srtt + 4·rttvar, kept between a floor and a ceiling. A peer
never heard from gets the node-wide estimate, so one frozen newcomer costs little too.

A call that timed out backs the peer's deadline off (§5.5: doubled, up to the ceiling) until
the peer answers again, and after two backoffs the estimate is dropped, so that answer
starts it afresh (§5.7): the estimate is built from what the peer was, and a peer whose
round trip jumped (a link that became slow) would otherwise time out at its old deadline
forever. Calls sent together time out together; they back off once, as one timer would.

A lookup call with a way on if the peer fails waits a few of the peer's round trips
(`deadline`), or of the node's for a peer it never measured: a hung peer costs it tens of
milliseconds, not the floor.
A peer whose call failed is suspected by the whole node at once (lookups route around it)
until it answers again or the suspicion ages out, so it is retried now and then. The node
retransmits a timed-out call and probes suspects with the backed-off deadline (see
`node.runtime`), so a peer that is only slow is heard, measured and trusted again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from chordshare.chord.messages import Call, ConfirmOwner, FindStep, Ping

ALPHA = 1 / 8  # RFC 6298 gains
BETA = 1 / 4
RESET_AFTER_BACKOFFS = 2  # RFC 6298 §5.7: the estimate is stale after this many
# A node asked to confirm it owns a key, told of nodes the asker could not reach, may first
# check them itself (two deadlines for one that failed it before), and past one found silent
# ask the next node, which may check it too. The asker waits that long on top of its own
# deadline, or it would take the checking node for dead as well.
CHECKING_DEADLINES = 5
# A node that checks again a peer it could not reach a moment ago waits this many of the
# peer's deadlines: a busy host misses one now and then, and two misses name a wrong owner.
CHECK_PATIENCE = 2.0
# A lookup call with a way on if the peer fails waits a few of the peer's own round trips,
# at least this long, rather than the floor: a hung peer then costs a lookup little, and
# one that is only slow is heard by the retransmissions that go on in the background.
STEP_FLOOR = 0.02
# A peer never measured is given the node-wide round trips once this many samples made
# them (a node that is still joining has one or two, from a ring that may all be starting).
KNOWN_AFTER = 16
# A peer that answers again after a call to it ran out its whole deadline is on a lossy
# link or a busy host: TCP's retransmission timer backs off 0.2, 0.4, 0.8 s, so such a link
# goes quiet for a second and more now and then while its host is alive. For the next
# LOSSY_MEMORY seconds its silences are judged over a longer window (`heard_within`).
LOSSY_MEMORY = 30.0


@dataclass(slots=True)
class RttEstimator:
    srtt: float | None = None
    rttvar: float = 0.0
    backoffs: int = 0  # timeouts since the peer last answered
    backed_off: float = 0.0  # the deadline they backed off to (0: none)
    last_backoff: float = -math.inf  # when, by the registry's clock
    samples: int = 0

    def observe(self, sample: float) -> None:
        self.samples += 1
        if self.srtt is None:
            self.srtt, self.rttvar = sample, sample / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - sample)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * sample

    @property
    def round_trips(self) -> float | None:
        """srtt + 4·rttvar, unbounded and without backoff; None before the first sample."""
        return None if self.srtt is None else self.srtt + 4 * self.rttvar

    def timeout(self, floor: float, ceiling: float, initial: float) -> float:
        round_trips = self.round_trips
        estimate = initial if round_trips is None else min(ceiling, max(floor, round_trips))
        return max(estimate, self.backed_off)


class PeerHealth:
    """Per-node registry of peer round trips and suspicions, keyed by address.

    Works as the `avoid` container of the protocol core: `address in health` is True while
    the peer is suspected.
    """

    def __init__(
        self,
        floor: float = 0.1,
        ceiling: float = 2.0,
        initial: float = 1.0,
        suspicion_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor, self.ceiling, self.initial = floor, ceiling, initial
        self.suspicion_ttl = suspicion_ttl
        self._clock = clock
        self._peers: dict[str, RttEstimator] = {}
        self._overall = RttEstimator()
        self._suspected: dict[str, float] = {}
        self._answered: dict[str, float] = {}  # when each peer last answered
        self._missed: set[str] = set()  # peers that ran out a whole deadline since they
        # last answered
        self._came_back: dict[str, float] = {}  # when they last answered after that

    def timeout_for(self, address: str) -> float:
        estimator = self._peers.get(address)
        overall = self._overall.timeout(self.floor, self.ceiling, self.initial)
        if estimator is None:
            return overall
        return estimator.timeout(self.floor, self.ceiling, overall)

    def timeout_for_check(self, address: str) -> float:
        """The deadline of a call whose answer may wait for the callee's own check of a
        third node (see CHECKING_DEADLINES), measured by the node-wide round trip."""
        checking = self._overall.timeout(self.floor, self.ceiling, self.initial)
        return self.timeout_for(address) + CHECKING_DEADLINES * checking

    def deadline(self, call: Call) -> float:
        """The deadline of one protocol call: a confirmation told of nodes the asker could
        not reach waits for the callee's checks; a lookup call with a way on if the peer
        fails (`fallback`) waits its round trips, not the floor; so does a check."""
        address = call.peer.address
        if isinstance(call, Ping) and call.check:
            return self._check_deadline(address)
        if isinstance(call, ConfirmOwner) and call.unreachable:
            return self.timeout_for_check(address)
        if not isinstance(call, FindStep | ConfirmOwner) or not call.fallback:
            return self.timeout_for(address)
        return self._step_deadline(address)

    def _step_deadline(self, address: str) -> float:
        """What a call with a way on waits: a few of the peer's round trips (the node's for
        a peer never measured, once KNOWN_AFTER samples made them), at least STEP_FLOOR,
        never more than its whole deadline."""
        full = self.timeout_for(address)
        round_trips = self._round_trips(address)
        if round_trips is None and self._overall.samples >= KNOWN_AFTER:
            round_trips = self._overall.round_trips
        if round_trips is None:
            return full
        return min(full, max(STEP_FLOOR, round_trips))

    def _check_deadline(self, address: str) -> float:
        """The deadline of a check of a peer for a node that could not reach it: from its
        round trips, without the backoff of the calls it missed (a stopped peer would
        otherwise cost every check the ceiling); CHECK_PATIENCE times that for a peer that
        failed us before."""
        round_trips = self._round_trips(address)
        if round_trips is None:
            deadline = self._overall.timeout(self.floor, self.ceiling, self.initial)
        else:
            deadline = min(self.ceiling, max(self.floor, round_trips))
        if address in self:
            deadline = min(self.ceiling, CHECK_PATIENCE * deadline)
        return deadline

    def _round_trips(self, address: str) -> float | None:
        """The peer's srtt + 4·rttvar, unbounded and without backoff; None if unknown."""
        estimator = self._peers.get(address)
        return None if estimator is None else estimator.round_trips

    def record_success(self, address: str, rtt: float) -> None:
        estimator = self._peers.setdefault(address, RttEstimator())
        if estimator.backoffs >= RESET_AFTER_BACKOFFS:
            estimator.srtt, estimator.rttvar = None, 0.0
        estimator.backoffs, estimator.backed_off = 0, 0.0
        estimator.observe(rtt)
        self._overall.observe(rtt)
        self._heard(address)

    def record_answer(self, address: str) -> None:
        """The peer answered after work of its own, or called us: alive, but no round trip
        to learn from."""
        self._heard(address)

    def _heard(self, address: str) -> None:
        now = self._clock()
        if address in self._missed:
            self._missed.discard(address)
            self._came_back[address] = now
        self._suspected.pop(address, None)
        self._answered[address] = now

    def heard_within(self, seconds: float, lossy_seconds: float | None = None) -> HeardWithin:
        """The peers that answered us or called us in the last `seconds`, as a container;
        in the last `lossy_seconds` for a peer that came back from a silence a short while
        ago (see LOSSY_MEMORY)."""
        return HeardWithin(self, seconds, seconds if lossy_seconds is None else lossy_seconds)

    def last_answer(self, address: str) -> float | None:
        """When the peer last answered (by the registry's clock); None if it never did."""
        return self._answered.get(address)

    def suspect(self, address: str) -> None:
        """Suspect a peer without a failed call (its deadline is left alone): one we have
        not heard from since this node was paused is routed around until it answers."""
        self._suspected[address] = self._clock()

    def record_failure(self, address: str, deadline: float | None = None) -> None:
        """A call failed after waiting `deadline` (None: the peer's whole deadline). One
        that had less (a lookup step with a way on) says little of the link."""
        now = self._clock()
        self._suspected[address] = now
        if deadline is None or deadline >= self.timeout_for(address):
            self._missed.add(address)
        estimator = self._peers.get(address)
        if estimator is None:
            estimator = self._peers[address] = RttEstimator()
        current = self.timeout_for(address)
        # Failures within half a deadline of the last backoff are calls that were under way
        # together (or refusals in a burst): one expiry of the timer, one doubling.
        if now - estimator.last_backoff >= current / 2:
            estimator.backoffs += 1
            estimator.backed_off = min(self.ceiling, 2 * current)
            estimator.last_backoff = now

    def backoffs(self, address: str) -> int:
        """Timeouts (or refusals) since the peer last answered, counted once per deadline."""
        estimator = self._peers.get(address)
        return 0 if estimator is None else estimator.backoffs

    def __contains__(self, address: object) -> bool:
        since = self._suspected.get(address)  # type: ignore[call-overload]
        if since is None:
            return False
        if self._clock() - since > self.suspicion_ttl:
            del self._suspected[address]  # type: ignore[arg-type]
            return False
        return True

    def suspected(self) -> list[str]:
        return [a for a in list(self._suspected) if a in self]


class HeardWithin:
    """`address in it`: the peer answered or called us recently (see `heard_within`)."""

    def __init__(self, health: PeerHealth, seconds: float, lossy_seconds: float) -> None:
        self.health, self.seconds, self.lossy_seconds = health, seconds, lossy_seconds

    def __contains__(self, address: object) -> bool:
        health = self.health
        heard = health._answered.get(address)  # type: ignore[call-overload]
        if heard is None:
            return False
        now = health._clock()
        if now - heard <= self.seconds:
            return True
        came_back = health._came_back.get(address)  # type: ignore[call-overload]
        lossy = came_back is not None and now - came_back <= LOSSY_MEMORY
        return lossy and now - heard <= self.lossy_seconds
