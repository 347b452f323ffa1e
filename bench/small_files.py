"""Latency of putting and getting many small files through a ring of real node processes.

Starts ``--nodes`` `chordshare node` processes on loopback (default 16, each with its own
data dir in a temp dir and ``--replicas`` copies of every file, default 3), waits until the
ring is formed (every node's successor list and predecessor ideal, and its fingers), then,
from an in-process ``FileClient`` connected to one node (on uvloop, like the CLI):

- puts ``--files`` random files of ``--size`` bytes (default 1000 x 4 KiB), one at a time,
  timing each ``FileClient.put`` (the file read and hashed in one thread call; then
  PutSmallFile straight to the owner when the client has met it, else a lookup first; the
  owner commits and answers once one of its successors also committed a copy);
- then gets each of them back, one at a time, into a new path, timing each
  ``FileClient.get`` (FindFile to the owner, lookup first as for a put, whose answer carries
  a small file's bytes; verification, fsync, rename);
- then puts and gets ``--cold`` more (default 100), each op by a new ``FileClient`` that has
  met no node yet, as every CLI command is (its process start not counted): these always
  look the owner up first.

The client remembers the nodes its lookups found (``sharing/routes.py``) and sends an op
straight to the first one at or after the key, which refuses (OUT_OF_RANGE) if it does not
own the key: ``lookup.calls_per_op`` in the breakdown is the share of ops that looked up.

The puts start ``--settle`` seconds (default 21) after the ring converged: a node new to its
keys (two repair periods, 20 s by default, after its predecessor changed) first asks its
successors which version of a name they hold, one more round trip per put; ``--settle 0``
measures that freshly formed ring.

Reports p50/p99 and files/s for both (targets: p50 <= 10 ms put, <= 5 ms get), with a
per-phase breakdown measured by wrapping the client's ring and peers (client-side time of
each call, medians over the ops), and as references measured in the same run: the round
trip of a bare Lookup RPC to the connected node (a key it owns itself: 0 hops), and of a
lookup of random keys (what a put or get does first). Prints one JSON object on stdout;
progress goes to stderr. Every process is killed at the end, also on errors and Ctrl-C.

    .venv/bin/python bench/small_files.py [--nodes 16] [--files 1000] [--size 4096]
        [--replicas 3] [--settle 21] [--cold 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import node_procs  # bench/ is the script's directory, so on sys.path

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.files.publisher import Signer
from chordshare.ids import IdSpace
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import RemoteRing
from chordshare.transport.client import NodeClient
from chordshare.transport.files_grpc import GrpcFilePeers

START_DEADLINE = 60.0
CONVERGE_DEADLINE = 90.0
TARGET_PUT_P50_MS = 5.0
TARGET_GET_P50_MS = 1.5


def log(message: str) -> None:
    print(f"[small_files {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# --------------------------------------------------------------------------- the ring


@dataclass
class Node:
    popen: subprocess.Popen[bytes]
    log_path: Path
    ref: NodeRef | None = None


@dataclass
class Ring:
    workdir: Path
    replicas: int
    nodes: list[Node] = field(default_factory=list)

    def spawn(self, join: str | None) -> Node:
        args = ["--bind", "127.0.0.1:0", "--log-level", "warning"]
        args += ["--replicas", str(self.replicas)]
        node = Node(*node_procs.start_numbered(self.workdir, len(self.nodes), args, join))
        self.nodes.append(node)
        return node

    async def ready(self, node: Node, deadline: float) -> NodeRef:
        node.ref = await node_procs.wait_ready(node.popen, node.log_path, deadline)
        return node.ref

    async def start(self, count: int) -> list[NodeRef]:
        deadline = time.monotonic() + START_DEADLINE
        first = self.spawn(None)
        first_ref = await self.ready(first, deadline)
        rest = [self.spawn(first_ref.address) for _ in range(count - 1)]
        return [first_ref, *await asyncio.gather(*(self.ready(n, deadline) for n in rest))]

    async def converge(self, refs: list[NodeRef]) -> float:
        """Seconds until every node holds the ideal successors, predecessor and fingers."""
        space = IdSpace()
        ideal = IdealRouting.of(refs, space)
        clients = [await NodeClient.connect(r.address) for r in refs]
        started = time.monotonic()
        try:
            while True:
                infos = await asyncio.gather(*(c.info() for c in clients), return_exceptions=True)
                good = True
                for r, info in zip(refs, infos, strict=True):
                    if (
                        isinstance(info, BaseException)
                        or list(info.successors) != ideal.successors(r, DEFAULT_SUCCESSORS)
                        or info.predecessor != ideal.predecessor(r)
                        or [f.node for f in info.fingers] != ideal.fingers(r)
                    ):
                        good = False
                        break
                if good:
                    return time.monotonic() - started
                if time.monotonic() - started > CONVERGE_DEADLINE:
                    raise RuntimeError(f"ring not converged after {CONVERGE_DEADLINE} s")
                await asyncio.sleep(0.25)
        finally:
            for c in clients:
                await c.close()

    def close(self) -> None:
        for node in self.nodes:
            if node.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.popen.kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)


# --------------------------------------------------------------------------- instrumentation


class Phases:
    """Client-side seconds and calls of each kind of call, for the op under way."""

    def __init__(self) -> None:
        self.current: dict[str, list[float]] = defaultdict(list)

    def reset(self) -> dict[str, list[float]]:
        done, self.current = self.current, defaultdict(list)
        return done


class TimedRing:
    def __init__(self, ring: RemoteRing, phases: Phases) -> None:
        self.ring = ring
        self.space = ring.space
        self.phases = phases

    async def owner(self, key: int) -> NodeRef:
        started = time.perf_counter()
        try:
            return await self.ring.owner(key)
        finally:
            self.phases.current["lookup"].append(time.perf_counter() - started)

    async def successors(self, node: NodeRef) -> list[NodeRef]:
        started = time.perf_counter()
        try:
            return await self.ring.successors(node)
        finally:
            self.phases.current["get_neighbors"].append(time.perf_counter() - started)


class TimedPeers:
    """GrpcFilePeers with the client-side time of every call recorded."""

    def __init__(self, peers: GrpcFilePeers, phases: Phases) -> None:
        self.peers = peers
        self.phases = phases

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.peers, name)
        if name not in ("missing_chunks", "put_file", "find_file", "delete"):
            return attr

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                self.phases.current[name].append(time.perf_counter() - started)

        return timed

    async def fetch_chunks(
        self, address: str, sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        started = time.perf_counter()
        got = 0
        try:
            async for item in self.peers.at(address).fetch_chunks(sha256, indexes):
                got += 1
                yield item
        finally:
            key = "fetch_chunks" if got else "fetch_chunks_empty_or_cancelled"
            self.phases.current[key].append(time.perf_counter() - started)


# --------------------------------------------------------------------------- measurement


def op_summary(latencies: list[float], wall: float) -> dict[str, Any]:
    return {
        "ops": len(latencies),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p90_ms": ms(percentile(latencies, 0.90)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies)),
        "mean_ms": ms(statistics.fmean(latencies)),
        "files_per_s": round(len(latencies) / wall, 1),
    }


def breakdown(per_op: list[dict[str, list[float]]], latencies: list[float]) -> dict[str, Any]:
    """Per kind of call: calls per op (mean) and p50 of its summed client-side time per op;
    'other' is the op's time outside the timed calls (hashing, threads, disk, download
    bookkeeping), p50 over the ops. Concurrent fetches overlap, so their sum can exceed
    the op."""
    kinds = sorted({k for op in per_op for k in op})
    out: dict[str, Any] = {}
    for kind in kinds:
        out[kind] = {
            "calls_per_op": round(statistics.fmean(len(op.get(kind, [])) for op in per_op), 3),
            "p50_ms_per_op": ms(statistics.median(sum(op.get(kind, [])) for op in per_op)),
        }
    serial = [k for k in kinds if not k.startswith("fetch_chunks")]
    other = [
        lat - sum(sum(op.get(k, [])) for k in serial)
        for op, lat in zip(per_op, latencies, strict=True)
    ]
    out["other_p50_ms"] = ms(statistics.median(other))
    return out


async def lookup_reference(client: NodeClient, me: NodeRef, rounds: int) -> dict[str, Any]:
    """Bare Lookup RPC round trips: of the node's own id (0 hops), and of random keys."""
    rng = random.Random(7)
    for _ in range(20):
        await client.lookup(me.id)
    own: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await client.lookup(me.id)
        own.append(time.perf_counter() - started)
        assert answer.hops == 0, answer
    rand: list[float] = []
    hops: list[int] = []
    for _ in range(rounds):
        key = rng.randrange(client.space.size)
        started = time.perf_counter()
        answer = await client.lookup(key)
        rand.append(time.perf_counter() - started)
        hops.append(answer.hops)
    return {
        "samples": rounds,
        "lookup_0_hops_p50_ms": ms(statistics.median(own)),
        "lookup_0_hops_p99_ms": ms(percentile(own, 0.99)),
        "lookup_random_key_p50_ms": ms(statistics.median(rand)),
        "lookup_random_key_p99_ms": ms(percentile(rand, 0.99)),
        "lookup_random_key_mean_hops": round(statistics.fmean(hops), 2),
    }


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    source_dir = workdir / "files"
    source_dir.mkdir()
    out_dir = workdir / "got"
    out_dir.mkdir()
    names = [f"small-{i:05d}.bin" for i in range(args.files)]
    warm_names = [f"warm-{i:03d}.bin" for i in range(args.warmup)]
    cold_names = [f"cold-{i:04d}.bin" for i in range(args.cold)]
    for name in names + warm_names + cold_names:
        (source_dir / name).write_bytes(rng.randbytes(args.size))

    ring = Ring(workdir, args.replicas)
    report: dict[str, Any] = {
        "config": {
            "nodes": args.nodes,
            "replicas": args.replicas,
            "files": args.files,
            "size_bytes": args.size,
            "warmup_files": args.warmup,
            "cold_client_files": args.cold,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
            "client": "in-process FileClient connected to node 0, sequential ops",
            "signed": not args.unsigned,
        }
    }
    try:
        log(f"starting {args.nodes} nodes")
        started = time.monotonic()
        refs = await ring.start(args.nodes)
        up = time.monotonic() - started
        converged = await ring.converge(refs)
        log(f"up in {up:.1f} s, converged after {converged:.1f} s more")
        report["startup"] = {
            "processes_up_s": round(up, 2),
            "converged_after_s": round(converged, 2),
            "settled_s": args.settle,
        }
        if args.settle > 0:
            # A node asks the other holders of a name before its first put of it while it
            # may be new to its keys: for two repair periods after its predecessor changed.
            # A ring that has run a while no longer does; --settle 0 measures a fresh ring.
            log(f"letting the ring settle for {args.settle:g} s")
            await asyncio.sleep(args.settle)

        entry = refs[0]
        client = await NodeClient.connect(entry.address)
        peers = GrpcFilePeers(health=client.transport.health)
        phases = Phases()
        # Signed as every CLI put is (`files.publisher`), unless --unsigned.
        signer = None if args.unsigned else Signer.generate()
        files = FileClient(
            TimedRing(RemoteRing(client), phases),  # type: ignore[arg-type]
            TimedPeers(peers, phases),  # type: ignore[arg-type]
            args.replicas,
            signer=signer,
        )
        try:
            # Warm-up: a channel to every node, and a few puts and gets.
            for r in refs:
                await peers.at(r.address).list_files()
            for name in warm_names:
                await files.put(source_dir / name, name)
            for name in warm_names:
                await files.get(name, out_dir / name)
                (out_dir / name).unlink()
            phases.reset()

            report["lookup_reference"] = await lookup_reference(client, entry, args.lookups)
            log(f"lookup reference {report['lookup_reference']}")

            async def put(files: FileClient, name: str) -> None:
                outcome = await files.put(source_dir / name, name)
                if outcome.unchanged:
                    raise RuntimeError(f"{name}: put changed nothing")

            sources: dict[int, int] = defaultdict(int)  # holders that served bytes -> ops

            async def get(files: FileClient, name: str) -> None:
                out = out_dir / name
                got = await files.get(name, out)
                sources[sum(1 for b in got.sources.values() if b)] += 1
                if got.size != args.size:
                    raise RuntimeError(f"{name}: got {got.size} bytes")
                out.unlink()

            def fresh() -> FileClient:
                # What each CLI command is: a client that has met no node yet.
                return FileClient(files.ring, files.peers, args.replicas, signer=signer)

            for op, names_of_op, client_of in (
                ("put", names, lambda: files),
                ("get", names, lambda: files),
                ("put_cold_client", cold_names, fresh),
                ("get_cold_client", cold_names, fresh),
            ):
                do = put if op.startswith("put") else get
                latencies: list[float] = []
                op_phases: list[dict[str, list[float]]] = []
                began = time.perf_counter()
                for name in names_of_op:
                    user = client_of()
                    started = time.perf_counter()
                    await do(user, name)
                    latencies.append(time.perf_counter() - started)
                    op_phases.append(phases.reset())
                if latencies:
                    summary = op_summary(latencies, time.perf_counter() - began)
                    summary["breakdown"] = breakdown(op_phases, latencies)
                    report[op] = summary
                    log(f"{op}: {len(latencies)} in {time.perf_counter() - began:.1f} s")
        finally:
            await peers.close()
            await client.close()
    finally:
        ring.close()

    report["holders_serving_bytes_per_get"] = dict(sorted(sources.items()))  # every get
    for op, target in (("put", TARGET_PUT_P50_MS), ("get", TARGET_GET_P50_MS)):
        report[op]["target_p50_ms"] = target
        report[op]["target_met"] = report[op]["p50_ms"] <= target
    report["all_targets_met"] = report["put"]["target_met"] and report["get"]["target_met"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument(
        "--unsigned", action="store_true", help="puts without a publisher key (as before keys)"
    )
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="files put and got first")
    parser.add_argument(
        "--cold",
        type=int,
        default=100,
        help="files put and got last, each op by a new client that has met no node (a CLI's)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=21.0,
        help="seconds between convergence and the first put (0: a freshly formed ring)",
    )
    parser.add_argument("--lookups", type=int, default=300, help="reference lookups")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="parent of the temp dir (default: /tmp)")
    args = parser.parse_args()
    if args.nodes < 1 or args.files < 1 or args.size < 1 or args.replicas < 1:
        parser.error("--nodes, --files, --size and --replicas must be at least 1")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chordshare-small-", dir=args.dir) as tmp:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from references import run_loop  # uvloop, like the CLI

        report = run_loop(bench(args, Path(tmp)))
    report["elapsed_s"] = round(time.perf_counter() - began, 1)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
