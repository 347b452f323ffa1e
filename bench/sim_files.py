"""The simulator with files: 1,000 nodes, 10,000 files and 500 membership changes (bursts of
joins, graceful leaves, crashes and crashed nodes coming back with old copies), with the
safety invariants checked at every step and convergence at the end. The target is under
2 minutes. The same ring and schedule without files is measured in the same run, so the
files' share of the time shows on a noisy machine. Prints one JSON document.

Usage: .venv/bin/python bench/sim_files.py [--nodes 1000] [--files 10000] [--changes 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from chordshare.sim.file_run import FilePlan, run_files

LIMIT_SECONDS = 120.0


def timed(plan: FilePlan) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    report = run_files(plan)
    return time.perf_counter() - started, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plan = FilePlan(args.nodes, args.files, args.changes, seed=args.seed)
    # The edits between changes put files too: without files none are put at all.
    ring_only = FilePlan(args.nodes, 0, args.changes, seed=args.seed, edits=0)
    ring_seconds, _ = timed(ring_only)
    seconds, report = timed(plan)
    result = {
        "plan": {"nodes": args.nodes, "files": args.files, "changes": args.changes},
        "ring_only_seconds": round(ring_seconds, 1),
        "seconds": round(seconds, 1),
        "limit_seconds": LIMIT_SECONDS,
        "met": seconds < LIMIT_SECONDS
        and report["safety_violations"] == 0
        and report["convergence_problems"] == 0,
        "report": report,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
