"""Full-membership routing hints under churn: their cost, their spread, their accuracy.

N = 1000 nodes (r = 8), one membership change per second (half joins, a quarter graceful
leaves, a quarter crashes), the maintenance loops at their default periods (stabilize
0.5 s, check_predecessor 1 s, fix_fingers 2 s) in simulated time; every maintenance call
and reply carries the caller's or callee's changes and, every 10 s per node, its digest
(`chordshare.sim.hints`, `chordshare.sim.gossip`). Reports, with hints and without:

- bytes per node per second of the gossip fields (serialized protobuf), target < 1 KB;
- seconds from a change until 95 % of the live nodes know it (target < 5 s, judged on the
  p99 over the changes) and until 100 %;
- how often `owner_hint` names the true owner (first live node at or after the key), for
  random keys and for the keys whose owner changed in the last 5 s;
- hops of whole lookups with hints (ask the node the hint names; Chord's lookup when it
  does not own the key) and with Chord alone.

Without hints nothing is sent and there is no hint: every lookup takes Chord's path.
Prints one JSON document.

Usage: .venv/bin/python bench/membership.py [--nodes 1000] [--seconds 60] [--rate 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from chordshare.sim.gossip import GossipSettings
from chordshare.sim.hints import HintPlan, measure_hints

BYTES_TARGET = 1024.0
KNOWN_95_TARGET_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, simulated")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0, help="membership changes per second")
    parser.add_argument("--digest-seconds", type=float, default=10.0)
    parser.add_argument("--fanout-factor", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    settings = GossipSettings(digest_seconds=args.digest_seconds, fanout_factor=args.fanout_factor)
    plan = HintPlan(
        nodes=args.nodes,
        seconds=args.seconds,
        warmup=args.warmup,
        changes_per_second=args.rate,
        seed=args.seed,
        settings=settings,
    )
    started = time.perf_counter()
    result: dict[str, Any] = measure_hints(plan).summary()
    wall = time.perf_counter() - started
    targets = {
        "bytes_under_1_kb_per_node_second": result["bytes_per_node_second"] < BYTES_TARGET,
        "known_95_p99_under_5_s": result["known_95_seconds"]["p99"] < KNOWN_95_TARGET_SECONDS,
        "every_change_settled": result["unfinished_changes"] == 0,
    }
    report = {
        "benchmark": "membership",
        "settings": {
            "stabilize_seconds": 0.5,
            "check_predecessor_seconds": 1.0,
            "fix_fingers_seconds": 2.0,
            "digest_seconds": settings.digest_seconds,
            "digest_arcs": settings.arcs,
            "max_events_per_message": settings.max_events,
            "fanout_factor": settings.fanout_factor,
            "cap": settings.cap,
            "seed": args.seed,
        },
        "with_hints": result,
        "without_hints": {"bytes_per_node_second": 0.0, "hint_hit_rate": None},
        "targets": targets,
        "target_met": all(targets.values()),
        "wall_seconds": round(wall, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
