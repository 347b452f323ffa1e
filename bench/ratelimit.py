"""Rate limits: capped transfers move at their caps, and capped repair leaves users' gets
their speed. Prints one JSON document.

Caps (one `chordshare node` process each, `--replicas 1`, a file of `--size-mib`, in-process
`FileClient`s as the CLI makes them):

- a put to a node with `--max-download-rate CAP`, a get from a node with `--max-upload-rate
  CAP`, two gets at once from it (they share the cap), and a put and a get capped by the
  client's own `--limit-rate CAP` to and from a node without caps; each against the
  uncapped transfer of the same file from the same node, measured in the same run (the
  reference: how fast it could go). Target: each capped transfer at 95-105 % of its cap.

Repair under a cap (`--max-repair-rate REPAIR` on every node, `--replicas 2`): three nodes
hold a user's file and `--repair-mib` of other files; the user's file is got `--rounds`
times (the reference, nothing else moving), then a fourth node joins, the others start
pushing it its share of the files, and the same get runs again while that repair goes on
(checked: the fourth node's store grows during every such get). Target: the median get
under capped repair at least 90 % of the median get alone. For contrast, the same with no
repair cap (a second ring): how much uncapped repair takes from a get on this machine.

On loopback a get is bound by CPU, so repair takes little from it either way; where links
are the limit it takes a share of them. So, as root, the same repair measurement runs again
on network namespaces with every host's egress capped (`ratelimit_links.py`; `--skip-links`
leaves it out), with `--links-repair-cap` on the ring and, for contrast, without a cap.
Target there too: the median get under capped repair at least 90 % of the get alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import node_procs
import ratelimit_links

from chordshare.faces.clients import Clients
from chordshare.sizes import parse_rate
from chordshare.transport.client import NodeClient

MIB = 1 << 20
START_DEADLINE = 30.0
BAND = (0.95, 1.05)  # a capped transfer's speed over its cap
KEPT_SPEED = 0.90  # a get under capped repair over the get alone


def log(message: str) -> None:
    print(f"[ratelimit {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Nodes:
    """Node processes; `close` kills every one."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.popens: list[Any] = []

    def start(self, label: str, *extra: str, join: str | None = None) -> str:
        log_path = self.workdir / f"node-{label}.log"
        args = ["--bind", "127.0.0.1:0", "--data-dir", str(self.workdir / f"data-{label}")]
        args += ["--api", "off", "--log-level", "warning", *extra]
        if join:
            args += ["--join", join]
        popen = node_procs.spawn(log_path, args)
        self.popens.append(popen)
        deadline = time.monotonic() + START_DEADLINE
        while (found := node_procs.ready(popen, log_path)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {label} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return found.address

    def close(self) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
        for popen in self.popens:
            with contextlib.suppress(Exception):
                popen.wait(10)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, 4 * MIB):
            out.write(os.urandom(min(4 * MIB, size - start)))


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


def mb_s(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 2)


async def wait_ring(address: str, count: int) -> None:
    client = await NodeClient.connect(address)
    try:
        give_up = time.monotonic() + START_DEADLINE
        while True:
            with contextlib.suppress(Exception):
                if len(await client.ring()) == count:
                    return
            if time.monotonic() > give_up:
                raise RuntimeError(f"no ring of {count} after {START_DEADLINE} s")
            await asyncio.sleep(0.1)
    finally:
        await client.close()


# --------------------------------------------------------------------------- caps


async def caps(args: argparse.Namespace, nodes: Nodes, workdir: Path) -> dict[str, Any]:
    cap = parse_rate(args.cap)
    size = args.size_mib * MIB

    def fresh(name: str) -> Path:
        """A file of new bytes: a put of bytes a node holds already sends nothing."""
        path = workdir / name
        write_random(path, size)
        return path

    capped = nodes.start("capped", "--replicas", "1", *_caps(cap))
    free = nodes.start("free", "--replicas", "1")
    rows: dict[str, Any] = {}

    def row(what: str, seconds: float, moved: int = size) -> None:
        speed = moved / seconds
        rows[what] = {
            "seconds": round(seconds, 3),
            "mb_s": round(speed / 1e6, 2),
            "of_cap": round(speed / cap, 4),
            "met": BAND[0] <= speed / cap <= BAND[1],
        }
        log(f"{what}: {speed / 1e6:.2f} MB/s, {speed / cap:.3f} of the cap")

    async with _clients(free) as at_free:
        files = at_free.files()
        reference_put = await timed(lambda: files.put(fresh("free.bin"), "free.bin"))
        reference_get = await timed(lambda: files.get("free.bin", workdir / "free.out"))
        (workdir / "free.out").unlink()
        limited = at_free.files(rate=cap)
        source = fresh("limited.bin")
        row("put, client --limit-rate", await timed(lambda: limited.put(source, "limited.bin")))
        row(
            "get, client --limit-rate",
            await timed(lambda: limited.get("limited.bin", workdir / "limited.out")),
        )
    async with _clients(capped) as at_capped:
        files = at_capped.files()
        source = fresh("c.bin")
        row("put, node --max-download-rate", await timed(lambda: files.put(source, "c.bin")))
        row("get, node --max-upload-rate", await timed(lambda: files.get("c.bin", workdir / "c1")))
        started = time.perf_counter()
        each = await asyncio.gather(
            timed(lambda: files.get("c.bin", workdir / "c2")),
            timed(lambda: files.get("c.bin", workdir / "c3")),
        )
        row("two gets at once, node --max-upload-rate (together)", max(each), 2 * size)
        shares = [round(size / s / cap, 4) for s in each]
        rows["two gets at once, node --max-upload-rate (together)"]["each_of_cap"] = shares
        log(f"two gets at once, each: {shares} of the cap ({time.perf_counter() - started:.2f} s)")
    return {
        "cap_mb_s": round(cap / 1e6, 3),
        "file_mib": args.size_mib,
        "reference_uncapped_mb_s": {
            "put": mb_s(size, reference_put),
            "get": mb_s(size, reference_get),
        },
        "capped": rows,
        "target": f"each capped transfer at {BAND[0]:.0%}-{BAND[1]:.0%} of its cap",
        "met": all(r["met"] for r in rows.values()),
    }


def _caps(cap: int) -> list[str]:
    return ["--max-upload-rate", str(cap), "--max-download-rate", str(cap)]


@contextlib.asynccontextmanager
async def _clients(address: str) -> Any:
    clients = await Clients.open(address)
    try:
        yield clients
    finally:
        await clients.close()


# --------------------------------------------------------------------------- repair


async def repair(
    args: argparse.Namespace, nodes: Nodes, workdir: Path, repair_cap: int
) -> dict[str, Any]:
    """A user's get alone, then while a joining node is pushed its share of the files
    under `repair_cap` (0: none)."""
    label = f"r{repair_cap}"
    flags = ["--replicas", "2", "--max-repair-rate", str(repair_cap)]
    first = nodes.start(f"{label}-0", *flags)
    for i in (1, 2):
        nodes.start(f"{label}-{i}", *flags, join=first)
    await wait_ring(first, 3)
    user = workdir / "user.bin"
    if not user.exists():
        write_random(user, args.get_mib * MIB)
    filler = workdir / "filler.bin"
    count = max(1, args.repair_mib // 16)
    async with _clients(first) as clients:
        files = clients.files()
        await files.put(user, "user.bin")
        for i in range(count):
            write_random(filler, 16 * MIB)
            await files.put(filler, f"filler-{i}.bin")
        out = workdir / "user.out"

        async def get() -> float:
            seconds = await timed(lambda: files.get("user.bin", out))
            out.unlink()
            return seconds

        alone = [await get() for _ in range(args.rounds)]
        joiner = nodes.start(f"{label}-3", *flags, join=first)
        joined = time.perf_counter()
        peers = clients.peers

        async def stored() -> int:
            return (await peers.at(joiner).list_files()).used_bytes

        while await stored() == 0:  # repair has begun
            if time.perf_counter() - joined > START_DEADLINE:
                raise RuntimeError("no repair reached the joining node")
            await asyncio.sleep(0.05)
        during: list[float] = []
        active: list[bool] = []
        for _ in range(args.rounds):
            before = await stored()
            during.append(await get())
            active.append(await stored() > before)
        repaired = await stored()
    size = args.get_mib * MIB
    median_alone = statistics.median(alone)
    median_during = statistics.median(during)
    return {
        "repair_cap_mb_s": round(repair_cap / 1e6, 3) if repair_cap else "none",
        "get_mib": args.get_mib,
        "get_alone_mb_s": [mb_s(size, s) for s in alone],
        "get_during_repair_mb_s": [mb_s(size, s) for s in during],
        "repair_active_during_each_get": active,
        "joiner_stored_mib_by_then": round(repaired / MIB, 1),
        "kept_of_alone": round(median_alone / median_during, 4),
    }


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"bench": "ratelimit", "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="chordshare-ratelimit-") as tmp:
        workdir = Path(tmp)
        nodes = Nodes(workdir)
        try:
            log("caps")
            report["caps"] = await caps(args, nodes, workdir)
            nodes.close()
            nodes = Nodes(workdir)
            log("repair under its cap")
            capped = await repair(args, nodes, workdir, parse_rate(args.repair_cap))
            capped["met"] = capped["kept_of_alone"] >= KEPT_SPEED and all(
                capped["repair_active_during_each_get"]
            )
            capped["target"] = f"median get under capped repair >= {KEPT_SPEED:.0%} of alone"
            report["repair_capped"] = capped
            if not args.skip_uncapped:
                nodes.close()
                nodes = Nodes(workdir)
                log("repair without a cap (contrast)")
                report["repair_uncapped"] = await repair(args, nodes, workdir, 0)
        finally:
            nodes.close()
    met = report["caps"]["met"] and report["repair_capped"]["met"]
    if not args.skip_links:
        log("repair under its cap, over capped links")
        links = await asyncio.to_thread(
            ratelimit_links.over_links, args, parse_rate(args.links_repair_cap)
        )
        capped = links.get("capped")
        if capped is not None:
            capped["met"] = capped["kept_of_alone"] >= KEPT_SPEED and all(
                capped["repair_active_during_each_get"]
            )
            met = met and capped["met"]
        report["repair_over_links"] = links
    report["met"] = met
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", default="16M", help="the transfers' cap (bytes per second)")
    parser.add_argument("--size-mib", type=int, default=64, help="the capped file's size")
    parser.add_argument("--repair-cap", default="8M", help="--max-repair-rate of the ring")
    parser.add_argument("--repair-mib", type=int, default=768, help="files to repair, in all")
    parser.add_argument("--get-mib", type=int, default=128, help="the user's file")
    parser.add_argument("--rounds", type=int, default=5, help="gets alone and during repair")
    parser.add_argument("--skip-uncapped", action="store_true", help="no contrast runs")
    parser.add_argument("--skip-links", action="store_true", help="no namespaces (root)")
    parser.add_argument("--link", default="100mbit", help="each host's egress (tc rate)")
    parser.add_argument("--links-repair-cap", default="1M", help="the ring's repair cap there")
    parser.add_argument("--links-repair-mib", type=int, default=384, help="files to repair")
    parser.add_argument("--links-get-mib", type=int, default=32, help="the user's file there")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
