"""What a node knows about its peers' health: adaptive deadlines and suspicion.

Deadlines follow TCP's retransmission timer (RFC 6298): a smoothed round trip and its
variation per peer, deadline = srtt + 4·rttvar, kept between a floor and a ceiling. A peer
never heard from gets the node-wide estimate, so one frozen newcomer costs little too.
A peer whose call failed is suspected by the whole node at once (lookups route around it)
until it answers again or the suspicion ages out, so it is retried now and then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

ALPHA = 1 / 8  # RFC 6298 gains
BETA = 1 / 4


@dataclass(slots=True)
class RttEstimator:
    srtt: float | None = None
    rttvar: float = 0.0

    def observe(self, sample: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = sample, sample / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - sample)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * sample

    def timeout(self, floor: float, ceiling: float, initial: float) -> float:
        if self.srtt is None:
            return initial
        return min(ceiling, max(floor, self.srtt + 4 * self.rttvar))


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

    def timeout_for(self, address: str) -> float:
        estimator = self._peers.get(address)
        overall = self._overall.timeout(self.floor, self.ceiling, self.initial)
        if estimator is None:
            return overall
        return estimator.timeout(self.floor, self.ceiling, overall)

    def record_success(self, address: str, rtt: float) -> None:
        self._peers.setdefault(address, RttEstimator()).observe(rtt)
        self._overall.observe(rtt)
        self._suspected.pop(address, None)

    def record_failure(self, address: str) -> None:
        self._suspected[address] = self._clock()

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
