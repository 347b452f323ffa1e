"""A ring of `chordshare node` processes on loopback for the latency benchmark: starting
them, the clients that talk to them, faults by signal, and polls for the ideal pointers.
Every process started here is killed by `Ring.close` (and by the kernel if the benchmark
dies: node_procs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import node_procs  # bench/ is the script's directory, so on sys.path

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.ids import IdSpace
from chordshare.transport.client import NodeClient
from chordshare.transport.grpc import GrpcTransport
from chordshare.transport.health import PeerHealth

START_DEADLINE = 60.0
CONVERGE_DEADLINE = 60.0
LOOKUP_DEADLINE = 5.0  # a lookup not answered by then counts as unanswered


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Node:
    popen: subprocess.Popen[bytes]
    log_path: Path
    ref: NodeRef | None = None
    state: str = "starting"  # live, dead (kill -9), frozen (SIGSTOP)

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)


@dataclass
class Ring:
    """Node processes of one ring and the clients that talk to them."""

    workdir: Path
    space: IdSpace = field(default_factory=IdSpace)
    nodes: list[Node] = field(default_factory=list)
    transport: GrpcTransport | None = None
    clients: dict[str, NodeClient] = field(default_factory=dict)

    def _spawn(self, join: str | None) -> Node:
        # No REST API: only the ring is measured here.
        args = ["--bind", "127.0.0.1:0", "--log-level", "warning", "--api", "off"]
        node = Node(*node_procs.start_numbered(self.workdir, len(self.nodes), args, join))
        self.nodes.append(node)
        return node

    async def _ready(self, node: Node, deadline: float) -> None:
        node.ref = await node_procs.wait_ready(node.popen, node.log_path, deadline)
        node.state = "live"

    async def start(self, count: int) -> float:
        started = time.monotonic()
        deadline = started + START_DEADLINE
        first = self._spawn(None)
        await self._ready(first, deadline)
        assert first.ref is not None
        rest = [self._spawn(first.ref.address) for _ in range(count - 1)]
        await asyncio.gather(*(self._ready(n, deadline) for n in rest))
        self.transport = GrpcTransport(self.space, PeerHealth())
        for node in self.nodes:
            assert node.ref is not None
            self.clients[node.ref.address] = NodeClient(
                node.ref.address, self.transport, LOOKUP_DEADLINE / 2
            )
        return time.monotonic() - started

    def live(self) -> list[NodeRef]:
        return [n.ref for n in self.nodes if n.state == "live" and n.ref is not None]

    def stopped(self) -> set[str]:
        """Addresses of the nodes stopped with SIGSTOP."""
        return {n.ref.address for n in self.nodes if n.state == "frozen" and n.ref is not None}

    def pick(self, rng: random.Random, count: int) -> list[Node]:
        return rng.sample([n for n in self.nodes if n.state == "live"], count)

    async def converge(self, deadline: float = CONVERGE_DEADLINE) -> float | None:
        """Seconds until every live node holds the ideal pointers (None: not by deadline)."""
        started = time.monotonic()
        give_up = started + deadline
        while time.monotonic() < give_up:
            if await self.converged():
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        return None

    async def converged(self, fingers: bool = True) -> bool:
        live = self.live()
        ideal = IdealRouting.of(live, self.space)
        infos = await asyncio.gather(
            *(self.clients[n.address].info() for n in live), return_exceptions=True
        )
        for ref, info in zip(live, infos, strict=True):
            if isinstance(info, BaseException):
                return False
            if list(info.successors) != ideal.successors(ref, DEFAULT_SUCCESSORS):
                return False
            if info.predecessor != ideal.predecessor(ref):
                return False
            if fingers and [f.node for f in info.fingers] != ideal.fingers(ref):
                return False
        return True

    def disturb(self, nodes: list[Node], sig: signal.Signals, state: str) -> float:
        """Send `sig` to each of `nodes` and mark them `state`; returns the moment
        (time.monotonic) the disturbance began, just before the first signal."""
        began = time.monotonic()
        for node in nodes:
            node.signal(sig)
            node.state = state
        return began

    async def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                node.signal(signal.SIGCONT)
                node.signal(signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)
        if self.transport is not None:
            await self.transport.close()
