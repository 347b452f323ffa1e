"""Lookup latency of a ring of real node processes, healthy and under faults, beside
Kademlia measured in the same run.

Starts N `chordshare node` processes on loopback (default 32, hashed 160-bit ids), waits
until every successor list, predecessor and finger table is the ideal one, and measures:

- the round trip of one gRPC call (Ping from this process), the yardstick;
- lookups of random keys through the `Lookup` RPC of random nodes: p50/p99 latency and hops,
  the p50 the asked node timed over the bare round trip's p50 (`p50_over_rtt`); each
  lookup is followed by its reference, hops + 1 bare Pings in a row to random nodes (the
  round trips it is made of: our call to the node and its hops), and the overhead ratios
  are the lookups' p50 and p99 over the references';
- the same right after faults, with maintenance running: kill -9 of 25 % of the nodes, then
  more until 50 % are dead; and on a fresh ring, 25 % frozen with SIGSTOP (hosts that hang),
  then thawed with SIGCONT;
- how long maintenance takes after each fault to restore the ideal successor lists and
  predecessors, and then the fingers (polled while the lookups run);
- one node of a ring in network namespaces losing 30 % of what it sends (lossy_link.py;
  skipped with the reason where namespaces cannot be made);
- Kademlia with as many nodes, alone on the machine first (kademlia_ref.py says what is
  timed).

A lookup is "answered" if the RPC returned within its deadline, "correct" if the owner it
names is the true owner among the nodes still serving (the first live id at or after the
key; a frozen node is not serving, a thawed or lossy one is). Each fault phase counts wrong
owners per second from the disturbance (the signal, the thaw, the start of the loss) and
those among lookups that started more than 200 ms after it (lookup_stats.py). Prints one
JSON document on stdout; progress goes to stderr. Every process and namespace started here
is removed at the end, also on errors and Ctrl-C.

    .venv/bin/python bench/latency.py [--nodes 32] [--seed 1] [--window 6] [--lossy-nodes 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import kademlia_ref
import lossy_link
from lookup_stats import TARGET_FROZEN_MAX, TARGET_HALF_DEAD_P99, fault_phase, healthy_phase
from ring_lookups import after_fault, measure_rtt, run_lookups
from ring_procs import LOOKUP_DEADLINE, Node, Ring, log

from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.ids import IdSpace
from chordshare.node.runtime import Timing
from chordshare.transport.health import PeerHealth


def config(args: argparse.Namespace) -> dict[str, Any]:
    health = PeerHealth()
    timing = Timing()
    return {
        "nodes": args.nodes,
        "bits": IdSpace().bits,
        "successors": DEFAULT_SUCCESSORS,
        "timing_s": {
            "stabilize": timing.stabilize,
            "check_predecessor": timing.check_predecessor,
            "fix_fingers": timing.fix_fingers,
        },
        "peer_deadline_s": {"floor": health.floor, "ceiling": health.ceiling},
        "suspicion_ttl_s": health.suspicion_ttl,
        "lookup_deadline_s": LOOKUP_DEADLINE,
        "fault_window_s": args.window,
        "thaw_window_s": args.thaw_window,
        "lossy_nodes": args.lossy_nodes,
        "lossy_window_s": args.lossy_window,
        "seed": args.seed,
        "cpus": os.cpu_count(),
    }


# What a phase's report calls the nodes it sent the signal to.
AFFECTED = {signal.SIGKILL: "dead", signal.SIGSTOP: "frozen", signal.SIGCONT: "thawed"}


async def phase(
    name: str,
    ring: Ring,
    rng: random.Random,
    nodes: list[Node],
    sig: signal.Signals,
    state: str,
    window: float,
    **judged: Any,
) -> dict[str, Any]:
    """Send `sig` to `nodes` (`state` from then on) and judge the lookups of the `window`
    seconds that follow (`fault_phase`: its targets, and the counts it reports)."""
    since = ring.disturb(nodes, sig, state)
    log(f"{name}: {sig.name} to {len(nodes)} nodes")
    samples, repaired = await after_fault(ring, rng, window, since)
    counts = {AFFECTED[sig]: len(nodes), "live": len(ring.live())}
    result = fault_phase(samples, repaired, window=window, **{**counts, **judged})
    log(f"{name} {result}")
    return result


async def killed_ring(
    args: argparse.Namespace, workdir: Path, rng: random.Random, kademlia_p50: float | None
) -> dict[str, Any]:
    """Startup, round trips, healthy lookups, then kill -9 of 25 % and of 50 %."""
    report: dict[str, Any] = {}
    quarter = args.nodes // 4
    ring = Ring(workdir)
    ring.workdir.mkdir()
    try:
        log(f"starting {args.nodes} nodes")
        up = await ring.start(args.nodes)
        converged = await ring.converge()
        log(f"up in {up:.1f} s, converged after {converged}")
        report["startup"] = {
            "processes_up_s": round(up, 2),
            "converged_after_s": None if converged is None else round(converged, 2),
        }
        report["rtt"] = await measure_rtt(ring)
        log(f"rtt {report['rtt']}")
        # Warm every node's channels once (as a ring that has run a while has them), then
        # measure.
        await run_lookups(ring, rng, count=args.lookups // 4)
        samples = await run_lookups(ring, rng, count=args.lookups, chains=True)
        report["healthy"] = healthy_phase(samples, report["rtt"], kademlia_p50)
        log(f"healthy {report['healthy']}")

        victims = ring.pick(rng, quarter)
        report["kill9_25pct"] = await phase(
            "kill9_25pct", ring, rng, victims, signal.SIGKILL, "dead", args.window
        )
        more = ring.pick(rng, args.nodes // 2 - quarter)
        report["kill9_50pct"] = await phase(
            "kill9_50pct",
            ring,
            rng,
            more,
            signal.SIGKILL,
            "dead",
            args.window,
            p99_under=TARGET_HALF_DEAD_P99,
            dead=len(victims) + len(more),
        )
    finally:
        await ring.close()
    return report


async def frozen_ring(
    args: argparse.Namespace, workdir: Path, rng: random.Random
) -> dict[str, Any]:
    """A fresh ring: 25 % frozen with SIGSTOP, then thawed with SIGCONT."""
    report: dict[str, Any] = {}
    ring = Ring(workdir)
    ring.workdir.mkdir()
    try:
        log(f"fresh ring: starting {args.nodes} nodes")
        await ring.start(args.nodes)
        log(f"converged after {await ring.converge()}")
        await run_lookups(ring, rng, count=args.lookups // 4)
        frozen = ring.pick(rng, args.nodes // 4)
        report["sigstop_25pct"] = await phase(
            "sigstop_25pct",
            ring,
            rng,
            frozen,
            signal.SIGSTOP,
            "frozen",
            args.window,
            max_under=TARGET_FROZEN_MAX,
        )
        # Thawed nodes come back with stale pointers and the others may still suspect them.
        report["sigcont_after_freeze"] = await phase(
            "sigcont_after_freeze", ring, rng, frozen, signal.SIGCONT, "live", args.thaw_window
        )
    finally:
        await ring.close()
    return report


async def rings(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    report: dict[str, Any] = {"config": config(args)}
    if args.skip_kademlia:
        report["kademlia"] = {"skipped": "--skip-kademlia"}
    else:
        report["kademlia"] = await kademlia_ref.measure(
            workdir / "kademlia", args.nodes, args.lookups, args.seed
        )
        log(f"kademlia {report['kademlia']}")
    killed = await killed_ring(args, workdir / "ring-a", rng, report["kademlia"].get("p50_ms"))
    report["startup"], report["rtt"] = killed.pop("startup"), killed.pop("rtt")
    report["healthy"] = killed.pop("healthy")
    report["faults"] = {**killed, **await frozen_ring(args, workdir / "ring-b", rng)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=32, help="of our ring and of Kademlia")
    parser.add_argument("--lookups", type=int, default=1000, help="healthy-ring lookups")
    parser.add_argument("--window", type=float, default=6.0, help="seconds of lookups per fault")
    parser.add_argument(
        "--thaw-window", type=float, default=12.0, help="seconds of lookups after SIGCONT"
    )
    parser.add_argument("--lossy-nodes", type=int, default=12, help="nodes in namespaces, 8-16")
    parser.add_argument(
        "--lossy-window", type=float, default=10.0, help="seconds of lookups under loss"
    )
    parser.add_argument("--skip-kademlia", action="store_true")
    parser.add_argument("--skip-lossy", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.nodes < 8:
        parser.error("--nodes must be at least 8")
    if not 8 <= args.lossy_nodes <= 16:
        parser.error("--lossy-nodes must be within 8-16")
    # SIGTERM unwinds like Ctrl-C, so the finally blocks kill the nodes and delete the
    # namespaces (PR_SET_PDEATHSIG covers SIGKILL of this process).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="chordshare-bench-") as tmp:
        report = asyncio.run(rings(args, Path(tmp)))
        if args.skip_lossy:
            lossy: dict[str, Any] = {"skipped": "--skip-lossy", "target_met": None}
        else:
            lossy = lossy_link.measure(
                Path(tmp) / "lossy", args.lossy_nodes, args.lossy_window, args.seed
            )
        log(f"lossy_link {lossy}")
    report["faults"]["lossy_link"] = lossy
    report["all_targets_met"] = bool(
        report["healthy"]["target_met"]
        and all(p["target_met"] for p in report["faults"].values() if p["target_met"] is not None)
    )
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
