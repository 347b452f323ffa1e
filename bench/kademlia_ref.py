"""Kademlia beside the ring, measured in the same run: N processes of kademlia_node.py
(kademlia 2.2.3, one node each, loopback UDP), bootstrapped one after another through the
first into one network.

What is timed: from this process, which is no node of the network, a `bench_lookup(key)`
request to a random node for a random 160-bit key, until its answer arrives. The node runs
the library's iterative node lookup (`NodeSpiderCrawl` from its own routing table, the
`find_node` rounds `Server.set` runs before storing) and answers with the closest node id
it found. So each sample is one request from outside plus one lookup made by a node,
as a chordshare lookup through the `Lookup` RPC is. Nothing comes from a local store:
every lookup sends `find_node` calls over UDP (their count is reported per lookup). The
answer is correct if it is the node whose id is closest to the key by XOR among all nodes.
Hops are the lookup's rounds (each up to alpha calls in parallel). The yardstick is a bare
UDP round trip of the same library (`bench_echo`) to nodes in turn.

Prints nothing itself; `measure` returns the JSON section. Every process is killed by
`KademliaNet.close`, and by the kernel if this process dies (node_procs.die_with_parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import node_procs
from lookup_stats import ms, percentile
from ring_procs import LOOKUP_DEADLINE, START_DEADLINE, log

SCRIPT = Path(__file__).with_name("kademlia_node.py")
READY = re.compile(r"kademlia node (\d+) serving at (\S+):(\d+)")
ID_BYTES = 20


def unavailable_reason() -> str | None:
    if importlib.util.find_spec("kademlia") is None:
        return "kademlia is not installed (pip install -e '.[bench]')"
    return None


@dataclass
class KadNode:
    popen: subprocess.Popen[bytes]
    log_path: Path
    id: int = 0
    address: tuple[str, int] = ("", 0)


@dataclass
class KademliaNet:
    workdir: Path
    nodes: list[KadNode] = field(default_factory=list)
    rpc: Any = None  # rpcudp's RPCProtocol: any unknown attribute is a remote call
    transport: asyncio.DatagramTransport | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir()

    def _spawn(self, bootstrap: tuple[str, int] | None) -> KadNode:
        log_path = self.workdir / f"kademlia-{len(self.nodes)}.log"
        args = [sys.executable, str(SCRIPT)]
        if bootstrap:
            args += ["--bootstrap", f"{bootstrap[0]}:{bootstrap[1]}"]
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=node_procs.die_with_parent,
            )
        node = KadNode(popen, log_path)
        self.nodes.append(node)
        return node

    async def _ready(self, node: KadNode, deadline: float) -> None:
        while not (found := READY.search(node.log_path.read_text(errors="replace"))):
            if node.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kademlia node did not start: {node.log_path.read_text()}")
            await asyncio.sleep(0.05)
        node.id, node.address = int(found[1]), (found[2], int(found[3]))

    async def start(self, count: int) -> float:
        from rpcudp.protocol import RPCProtocol  # type: ignore[import-untyped]

        started = time.monotonic()
        deadline = started + START_DEADLINE
        first = self._spawn(None)
        await self._ready(first, deadline)
        # One after another, as each bootstrap's own lookup teaches the network the newcomer.
        for _ in range(count - 1):
            await self._ready(self._spawn(first.address), deadline)
        loop = asyncio.get_running_loop()
        self.transport, self.rpc = await loop.create_datagram_endpoint(
            lambda: RPCProtocol(wait_timeout=LOOKUP_DEADLINE), local_addr=("127.0.0.1", 0)
        )
        return time.monotonic() - started

    async def contacts(self) -> list[int | None]:
        answers = await asyncio.gather(*(self.rpc.bench_contacts(n.address) for n in self.nodes))
        return [value if ok else None for ok, value in answers]

    def owner(self, key: int) -> int:
        return min((n.id for n in self.nodes), key=lambda i: i ^ key)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                node.popen.kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)


def spread(values: list[int | None]) -> dict[str, int | None]:
    known = [v for v in values if v is not None]
    return {"min": min(known, default=None), "max": max(known, default=None)}


async def echo_rtt(net: KademliaNet, rounds: int = 20) -> list[float]:
    times = []
    for _ in range(rounds + 1):
        for node in net.nodes:
            started = time.perf_counter()
            ok, _ = await net.rpc.bench_echo(node.address)
            if ok:
                times.append(time.perf_counter() - started)
    return times[len(net.nodes) :]  # the first round warms up


async def lookups(net: KademliaNet, rng: random.Random, count: int) -> dict[str, Any]:
    latencies: list[float] = []
    in_node: list[float] = []
    rounds: list[int] = []
    calls: list[int] = []
    failed = correct = 0
    for _ in range(count):
        node = rng.choice(net.nodes)
        key = rng.getrandbits(8 * ID_BYTES)
        started = time.perf_counter()
        ok, answer = await net.rpc.bench_lookup(node.address, key.to_bytes(ID_BYTES, "big"))
        took = time.perf_counter() - started
        if not ok:
            failed += 1
            continue
        best, hops, sent, seconds = answer
        latencies.append(took)
        in_node.append(seconds)
        rounds.append(hops)
        calls.append(sent)
        correct += int.from_bytes(best, "big") == net.owner(key)
    answered = len(latencies)
    return {
        "lookups": count,
        "answered": answered,
        "failed": failed,
        "correct_rate": round(correct / count, 4) if count else None,
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies, default=None)),
        "in_node_p50_ms": ms(percentile(in_node, 0.50)),
        "in_node_p99_ms": ms(percentile(in_node, 0.99)),
        "mean_hops": round(sum(rounds) / answered, 3) if answered else None,
        "max_hops": max(rounds, default=None),
        "mean_find_node_calls": round(sum(calls) / answered, 3) if answered else None,
        "min_find_node_calls": min(calls, default=None),
    }


async def measure(workdir: Path, count: int, lookups_count: int, seed: int) -> dict[str, Any]:
    """Start `count` Kademlia nodes, measure, stop them; the report's "kademlia" section."""
    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    net = KademliaNet(workdir)
    try:
        log(f"kademlia: starting {count} nodes")
        up = await net.start(count)
        joined = await net.contacts()
        log(f"kademlia: up in {up:.1f} s")
        rtt = await echo_rtt(net)
        rng = random.Random(seed)
        await lookups(net, rng, max(1, lookups_count // 4))  # warm-up, as for the ring
        warm = await net.contacts()
        result = await lookups(net, rng, lookups_count)
    finally:
        await net.close()
    return {
        "library": "kademlia 2.2.3 (k = 20, alpha = 3)",
        "nodes": count,
        "processes_up_s": round(up, 2),
        # Contacts per routing table (of N - 1): the library fills tables only from the
        # traffic it sees and its hourly refresh, so they are reported, not waited for.
        "contacts_after_bootstrap": spread(joined),
        "contacts_when_measured": spread(warm),
        "rtt": {
            "samples": len(rtt),
            "median_ms": ms(percentile(rtt, 0.50)),
            "p99_ms": ms(percentile(rtt, 0.99)),
        },
        **result,
    }
