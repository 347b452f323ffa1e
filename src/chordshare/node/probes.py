"""Probes of suspected peers: how a peer that was only slow, or was frozen and resumed, is
found alive again.

Lookups skip suspects, so such a peer must be found here rather than wait out its
suspicion: it may own keys meanwhile. Each probe waits the peer's backed-off deadline (it
doubles on every probe that times out, up to the ceiling), long enough to hear a slow peer;
its answer is the round trip that sets the peer's deadline and clears the suspicion.

A peer that has not answered a probe for `DOWN_AFTER` seconds is declared down (`down`):
a frozen host or a lossy link fails probes for a while too, and a node that is only slow
must keep its place in the membership hints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from chordshare.node.tasks import NodeTasks
from chordshare.transport.base import PeerError, Transport

DOWN_AFTER = 30.0  # seconds of failed probes before a peer is declared down


class SuspectProbes:
    def __init__(
        self,
        transport: Transport,
        tasks: NodeTasks,
        down: Callable[[str], None] = lambda address: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.tasks = tasks
        self.down = down
        self.clock = clock
        self.running = False  # probes start only while the node's maintenance runs
        # Each silent peer's first and latest failed probe.
        self._silent: dict[str, tuple[float, float]] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}  # by address

    def probe_all(self) -> None:
        """Ping every suspected peer not being pinged already. Does not wait for them: one
        peer that never answers holds up neither the caller nor the other probes."""
        for address in self.transport.health.suspected():
            self.start(address)

    def start(self, address: str) -> None:
        if address not in self._probes and self.running:
            self._probes[address] = self.tasks.start(self._probe(address), f"probe {address}")

    async def _probe(self, address: str) -> None:
        health = self.transport.health
        try:
            await self.transport.hello(address, health.timeout_for(address))
        except PeerError:
            # Still suspected: probed again next period, with a longer deadline.
            now = self.clock()
            since, last = self._silent.get(address, (now, now))
            if now - last > DOWN_AFTER:  # an old silence, since ended: count anew
                since = now
            self._silent[address] = (since, now)
            if now - since >= DOWN_AFTER:
                self.down(address)
        else:
            self._silent.pop(address, None)
        finally:
            self._probes.pop(address, None)

    def stop(self) -> list[asyncio.Task[None]]:
        """Stop probing; the probes under way, cancelled, for the caller to await."""
        self.running = False
        probes, self._probes = list(self._probes.values()), {}
        for probe in probes:
            probe.cancel()
        return probes


__all__ = ["SuspectProbes"]
