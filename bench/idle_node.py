"""The memory of an idle node against a bare gRPC server, in one run.

Starts, one at a time, on free loopback ports: a bare grpc.aio server (one port, no
service) and `chordshare node --api off`; then a bare grpc.aio server that has imported
FastAPI and uvicorn, and `chordshare node` with its REST API. Each runs `--settle` seconds
after it is ready, then its resident memory (VmRSS) is read and it is stopped. Targets: the
node without the API at most 10 MB over the bare server, and with it at most 10 MB over the
server that imported FastAPI and uvicorn. Prints one JSON document.

Usage: .venv/bin/python bench/idle_node.py [--settle 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from node_procs import CLI, die_with_parent

TARGET_MB = 10.0
BARE = """
import asyncio, sys
{imports}
import grpc

async def main() -> None:
    server = grpc.aio.server()
    server.add_insecure_port("127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def measure(command: list[str], ready: str, settle: float) -> float:
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        for line in process.stdout:
            if ready in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} never said {ready!r}")
        time.sleep(settle)  # let it reach its idle state: a benchmark, not a test
        return rss_mb(process.pid)
    finally:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {"bare": [], "node": [], "bare_web": [], "node_api": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            bare = BARE.format(imports="", port=free_port())
            web = BARE.format(imports="import fastapi, uvicorn", port=free_port())
            runs["bare"].append(measure([sys.executable, "-c", bare], "ready", args.settle))
            node = [*CLI, "node", "--bind", f"127.0.0.1:{free_port()}", "--api", "off"]
            node += ["--data-dir", f"{tmp}/a{round_}"]
            runs["node"].append(measure(node, "serving at", args.settle))
            runs["bare_web"].append(measure([sys.executable, "-c", web], "ready", args.settle))
            node_api = [*CLI, "node", "--bind", f"127.0.0.1:{free_port()}"]
            node_api += ["--api", f"127.0.0.1:{free_port()}", "--data-dir", f"{tmp}/b{round_}"]
            runs["node_api"].append(measure(node_api, "serving at", args.settle))
    best = {name: round(min(values), 1) for name, values in runs.items()}
    over = round(best["node"] - best["bare"], 1)
    over_api = round(best["node_api"] - best["bare_web"], 1)
    result = {
        "rss_mb": runs,
        "best_mb": best,
        "node_over_bare_mb": over,
        "node_api_over_bare_web_mb": over_api,
        "target_mb": TARGET_MB,
        "met": over <= TARGET_MB and over_api <= TARGET_MB,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
