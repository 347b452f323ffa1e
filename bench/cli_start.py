"""How long `chordshare ls --node ADDR` takes, start to exit, against the bare import of
what any such command needs (`python -c "import grpc, typer, rich"`).

Starts one `chordshare node` on a free loopback port (no REST API), puts one small file
into it so that `ls` prints a row, then runs both commands in turns, `--repeat` times each,
and prints JSON: the best run of each in ms, their difference, every run, and whether the
difference is within the target (60 ms). The node is stopped at the end, also on errors.

The commands run as an installed command does, with their modules' bytecode cached: one
untimed run of each writes the caches first (PYTHONDONTWRITEBYTECODE is dropped for them).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from node_procs import ready, spawn

from chordshare.chord.messages import NodeRef

TARGET_MS = 60.0
BASELINE = (sys.executable, "-c", "import grpc, typer, rich")
START_DEADLINE = 30.0  # seconds for the node to say it serves


def chordshare_command() -> tuple[str, ...]:
    """The installed `chordshare` beside this interpreter, as a user runs it; the module
    where there is none."""
    script = Path(sys.executable).with_name("chordshare")
    return (str(script),) if script.exists() else (sys.executable, "-m", "chordshare.faces.cli")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(command: Sequence[str]) -> float:
    """Milliseconds from start to exit of one run; RuntimeError if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=child_env())
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed


def start_node(folder: Path) -> tuple[subprocess.Popen[bytes], NodeRef]:
    address = f"127.0.0.1:{free_port()}"
    log = folder / "node.log"
    args = ["--bind", address, "--data-dir", str(folder / "data"), "--api", "off"]
    node = spawn(log, args)
    give_up = time.monotonic() + START_DEADLINE
    while (found := ready(node, log)) is None:
        if time.monotonic() > give_up:
            node.kill()
            raise RuntimeError(f"node at {address} did not start in {START_DEADLINE} s")
        time.sleep(0.05)
    return node, found


def stop_node(node: subprocess.Popen[bytes]) -> None:
    node.terminate()  # it leaves the ring gracefully, alone on it: at once
    try:
        node.wait(10)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()


def measure(repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="chordshare-cli-start-") as scratch:
        folder = Path(scratch)
        node, me = start_node(folder)
        try:
            sample = folder / "sample.txt"
            sample.write_text("a file for ls to list\n")
            cli = chordshare_command()
            run_once([*cli, "put", str(sample), "--node", me.address])
            commands = {"baseline": BASELINE, "ls": (*cli, "ls", "--node", me.address)}
            for command in commands.values():
                run_once(command)  # writes the bytecode caches
            runs: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(repeat):  # in turns: a burst of other work hits both alike
                for name, command in commands.items():
                    runs[name].append(run_once(command))
        finally:
            stop_node(node)
    baseline, ls = min(runs["baseline"]), min(runs["ls"])
    return {
        "command": f"chordshare ls --node {me.address}",
        "baseline": "python -c 'import grpc, typer, rich'",
        "repeat": repeat,
        "baseline_ms": round(baseline, 1),
        "ls_ms": round(ls, 1),
        "difference_ms": round(ls - baseline, 1),
        "target_difference_ms": TARGET_MS,
        "met": ls - baseline <= TARGET_MS,
        "runs_ms": {name: [round(t, 1) for t in times] for name, times in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (the best counts)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(json.dumps(measure(args.repeat), indent=2))


if __name__ == "__main__":
    main()
