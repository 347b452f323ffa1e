"""Throughput of one file transfer between a client and a node on loopback, and peak memory.

Starts 2 `chordshare node` processes on loopback (separate data dirs in a temp dir, both
with ``--replicas 1``, so that a put is ONE transfer, client -> owner, and a get is ONE
transfer, owner -> client: no replication traffic competes with the measurement). Then:

1. Throughput, for every ``--chunk-kib``: a random file of ``--size-mib`` (generated once, in
   the temp dir, so it is in the page cache like the references' buffers) is put by an
   in-process ``FileClient`` connected to node A, and got back by a ``FileClient`` connected
   to node B into a new path.

   - put MB/s: the whole of ``FileClient.put`` (hashing the file into its manifest, the owner
     lookup, MissingChunks, streaming the chunks, the owner's storing and commit);
   - get MB/s: the whole of ``FileClient.get`` (finding the manifest and holders, fetching,
     verifying every chunk, writing, fsync and rename).

   After each round the file is removed from the network (its chunks are freed) and the
   output deleted, so the next put sends every byte again (checked with MissingChunks).
   In the same run, interleaved with the transfers (round 1 of everything, then round 2...),
   the references of ``bench/references.py``: raw TCP, a bare grpc.aio stream of 1 MiB
   messages (both directions), disk writes + fsync into the same temp dir, and sha256.
   Ratios: put / min(grpc stream, disk) and get / min(grpc stream, disk), medians; the
   target is >= 0.75.

2. Memory (skip with ``--skip-rss``): on 2 fresh nodes, a ``--big-gib`` file is put with
   ``chordshare put`` and got with ``chordshare get`` (CLI processes). The peak RSS (VmHWM)
   of both node processes and of each CLI process is reported (a CLI's from wait4's
   ru_maxrss through a tiny wrapper process, and its VmHWM sampled every 10 ms; the nodes'
   VmHWM sampled from /proc every 50 ms). The nodes' high-water marks are restarted
   between the put and the get (/proc/PID/clear_refs), so their peaks are reported for
   each; the target is <= 100 MB for each node and the CLI during the get.

Prints one JSON object on stdout; progress on stderr. Every process started here is killed
at the end (also on errors and Ctrl-C, and by PR_SET_PDEATHSIG if this process is killed),
and the temp dir is deleted.

With ``--get-variants product,plain_malloc`` each round also gets the file in a fresh
process per variant (as libtorrent's leecher is), timed from its first call to the fsynced
file, so a get's alternatives are measured against each other in the same run
(`VARIANTS`): malloc set up for chunks, or left alone (in the getting process, and on a
second pair of nodes started without it and without heap trims). With
``--libtorrent-each-round`` libtorrent's downloads run in each round too, for same-round
ratios.

With ``--disk-cap-mb-s N`` every write of the run (the references' included) to the temp
dir's disk is capped at N MB/s (``bench/disk_cap.py``): the disk-bound case, on demand.

    .venv/bin/python bench/transfer.py [--size-mib 256] [--chunk-kib 256,1024,4096]
        [--repeat 2] [--big-gib 1] [--skip-rss] [--dir DIR] [--disk-cap-mb-s N]
        [--get-variants product,plain_malloc] [--libtorrent-each-round]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This process forks workers while its gRPC channels are busy: gRPC's fork handlers, on by
# default, can abort a child before its exec (node_procs.py). Read when gRPC is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import libtorrent_ref
import node_procs
import references as ref
import threaded_get
from disk_cap import write_cap

from chordshare.allocator import tune_malloc
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import RemoteRing
from chordshare.transport.client import NodeClient
from chordshare.transport.files_grpc import GrpcFilePeers

CLI = node_procs.CLI
START_DEADLINE = 30.0
MIB = 1 << 20
TARGET_RATIO = 0.75
TARGET_RSS_MB = 100.0
GET_HASH_PASSES = 1  # each chunk as it lands
# How each get variant runs: malloc set up for chunks (as the CLI and every node set it) or
# left alone, in the getting process and the nodes it gets from.
VARIANTS: dict[str, dict[str, Any]] = {
    "product": {"malloc": True},
    "plain_malloc": {"malloc": False},
}
# A node process with glibc's malloc left as it is: no tune_malloc, no heap trims.
PLAIN_MALLOC_NODE = (
    sys.executable,
    "-c",
    "import chordshare.allocator as a; a.tune_malloc = lambda: {}; "
    "a.trim_free_memory = lambda: False; from chordshare.faces.cli import main; main()",
)
PUT_HASH_PASSES = 3  # client: each chunk; owner: each chunk, and the whole file
REPLICAS = 1


def log(message: str) -> None:
    print(f"[transfer {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


@dataclass
class Node:
    popen: subprocess.Popen[bytes]
    log_path: Path
    id: int = -1
    address: str = ""


@dataclass
class Nodes:
    """Node processes; `close` kills every one of them."""

    workdir: Path
    nodes: list[Node] = field(default_factory=list)

    def start(self, label: str, join: str | None = None, plain_malloc: bool = False) -> Node:
        data = self.workdir / f"data-{label}"
        args = ["--bind", "127.0.0.1:0", "--data-dir", str(data)]
        args += ["--replicas", str(REPLICAS), "--log-level", "warning"]
        if join:
            args += ["--join", join]
        log_path = self.workdir / f"node-{label}.log"
        if plain_malloc:
            with log_path.open("wb") as log_out:
                popen = subprocess.Popen(
                    [*PLAIN_MALLOC_NODE, "node", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log_out,
                    stderr=log_out,
                    preexec_fn=node_procs.die_with_parent,
                )
        else:
            popen = node_procs.spawn(log_path, args)
        node = Node(popen, log_path)
        self.nodes.append(node)
        deadline = time.monotonic() + START_DEADLINE
        while (found := node_procs.ready(node.popen, log_path)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"node did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        node.id, node.address = found.id, found.address
        return node

    def close(self) -> None:
        for node in self.nodes:
            if node.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.popen.kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)


async def wait_ring(address: str, count: int, deadline: float = 30.0) -> None:
    client = await NodeClient.connect(address)
    try:
        give_up = time.monotonic() + deadline
        while True:
            with contextlib.suppress(Exception):
                if len(await client.ring()) == count:
                    return
            if time.monotonic() > give_up:
                raise RuntimeError(f"ring of {count} not formed after {deadline} s")
            await asyncio.sleep(0.1)
    finally:
        await client.close()


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left > 0:
            n = min(left, 4 * MIB)
            out.write(os.urandom(n))
            left -= n


# --------------------------------------------------------------------------- throughput


@dataclass
class Clients:
    node: NodeClient
    peers: GrpcFilePeers
    files: FileClient

    @classmethod
    async def open(cls, address: str) -> Clients:
        node = await NodeClient.connect(address)
        peers = GrpcFilePeers(health=node.transport.health)
        return cls(node, peers, FileClient(RemoteRing(node), peers, REPLICAS))

    async def close(self) -> None:
        await self.peers.close()
        await self.node.close()


async def one_transfer(
    putter: Clients,
    getter: Clients,
    source: Path,
    out: Path,
    name: str,
    chunk: int,
    pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Put source as name (chunk bytes per chunk), get it back into out; times and checks,
    and the CPU seconds this process and `pids` (the nodes) spent on each."""
    size = await asyncio.to_thread(os.path.getsize, source)
    started = time.perf_counter()
    with ref.CpuMeter(pids) as put_cpu:
        outcome = await putter.files.put(source, name, chunk_size=chunk)
    put_s = time.perf_counter() - started
    manifest = outcome.manifest
    if outcome.unchanged:
        raise RuntimeError(f"{name}: the put changed nothing (a leftover copy?)")
    started = time.perf_counter()
    with ref.CpuMeter(pids) as get_cpu:
        report = await getter.files.get(name, out)
    get_s = time.perf_counter() - started
    got_size = await asyncio.to_thread(os.path.getsize, out)
    if report.sha256 != manifest.sha256 or got_size != size:
        raise RuntimeError(f"{name}: the file got back is not the file put")
    return {
        "put_mb_s": ref.mb_s(size, put_s),
        "get_mb_s": ref.mb_s(size, get_s),
        "put_s": put_s,
        "get_s": get_s,
        "put_cpu_s": put_cpu.seconds,
        "get_cpu_s": get_cpu.seconds,
        "sources": dict(report.sources),
        "chunks": len(manifest.chunks),
        "manifest": manifest,
    }


async def drop(putter: Clients, name: str, out: Path) -> None:
    """Remove name from the network (its chunks are freed) and the local output."""
    await putter.files.remove(name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out)


def get_in_worker(variant: str, node: str, name: str, out: Path, pids: Sequence[int]) -> dict:
    """Get name through node in a fresh process set up as `variant` says; its MB/s from
    the get's first call to the fsynced file, CPU seconds (the worker's get and `pids`,
    the nodes, over the whole process) and the worker's peak RSS."""
    spec = {**VARIANTS[variant], "node": node, "name": name, "out": str(out)}
    with ref.CpuMeter(pids) as nodes_cpu:
        done = subprocess.run(
            [sys.executable, __file__, "--get-worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            preexec_fn=node_procs.die_with_parent,
        )
    if done.returncode != 0:
        raise RuntimeError(f"get worker {variant} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["mb_s"] = ref.mb_s(result["size"], result["seconds"])
    result["cpu_s"] = result["worker_cpu_s"] + nodes_cpu.seconds
    return result


def get_worker(spec: dict[str, Any]) -> None:
    """The worker process of `get_in_worker`: prints its result as JSON."""
    if spec["malloc"]:
        tune_malloc()  # as the CLI does, before any thread starts
    print(json.dumps(ref.run_loop(worker_get(spec))))


async def worker_get(spec: dict[str, Any]) -> dict[str, Any]:
    clients = await Clients.open(spec["node"])
    try:
        # Untimed: the channel to the node, and the key's owner learned (as a client that
        # has met the ring before; libtorrent's clock also starts once it is connected).
        await clients.files.find(spec["name"])
        cpu, started = time.process_time(), time.perf_counter()
        report = await clients.files.get(spec["name"], Path(spec["out"]))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await clients.close()
    got_size = await asyncio.to_thread(os.path.getsize, spec["out"])
    if got_size != report.size:
        raise RuntimeError("the file got back is not the file put")
    return {
        "seconds": seconds,
        "size": report.size,
        "worker_cpu_s": cpu,
        # VmHWM: getrusage's ru_maxrss would carry the parent's peak over fork and exec.
        "peak_rss_mb": round((vm_hwm_kib(os.getpid()) or 0) * 1024 / 1e6, 1),
    }


async def all_missing(clients: Clients, source: Path, name: str, chunk: int) -> bool:
    """Whether the owner lacks every chunk of source at this chunk size (no dedup)."""
    from chordshare.files.placement import file_key
    from chordshare.sharing.chunking import build_manifest

    manifest = await asyncio.to_thread(build_manifest, source, name, chunk)
    owner = await clients.files.ring.owner(file_key(clients.files.ring.space, name))
    missing = await clients.peers.at(owner.address).missing_chunks(manifest.chunks)
    return len(set(missing)) == len(manifest.chunks)


async def throughput(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    size = args.size_mib * MIB
    chunk_sizes = [k * 1024 for k in args.chunk_kib]
    nodes = Nodes(workdir)
    source = workdir / "source.bin"
    log(f"writing a random file of {args.size_mib} MiB")
    write_random(source, size)
    try:
        a = nodes.start("a")
        b = nodes.start("b", join=a.address)
        await wait_ring(a.address, 2)
        log(f"nodes up: A {a.address}, B {b.address}")
        pair_pids = [a.popen.pid, b.popen.pid]
        plain_pids: list[int] = []
        plain_putter: Clients | None = None
        if "plain_malloc" in args.get_variants:
            c = nodes.start("c", plain_malloc=True)
            d = nodes.start("d", join=c.address, plain_malloc=True)
            await wait_ring(c.address, 2)
            log(f"nodes without malloc settings up: C {c.address}, D {d.address}")
            plain_pids = [c.popen.pid, d.popen.pid]
            plain_putter = await Clients.open(c.address)
        putter = await Clients.open(a.address)
        getter = await Clients.open(b.address)
        try:
            with (
                ref.spawn_server("tcp") as tcp_port,
                ref.spawn_server_process("grpc") as (grpc_port, grpc_pid),
                contextlib.ExitStack() as stack,
            ):
                async with ref.grpc_channel(f"127.0.0.1:{grpc_port}") as channel:
                    await asyncio.wait_for(channel.channel_ready(), ref.START_DEADLINE)
                    # Warm-up: connections, windows, allocators, imports.
                    await ref.grpc_download_once(channel, 8 * MIB, MIB)
                    await ref.grpc_upload_once(channel, 8 * MIB, MIB)
                    ref.raw_tcp_once(tcp_port, 8 * MIB)
                    small = workdir / "warm.bin"
                    write_random(small, 8 * MIB)
                    for chunk in chunk_sizes:
                        warm_out = workdir / "warm.out"
                        await one_transfer(putter, getter, small, warm_out, f"warm-{chunk}", chunk)
                        await drop(putter, f"warm-{chunk}", warm_out)
                    small.unlink()
                    lt_rss: list[float] = []  # the libtorrent leechers' peaks

                    runs: dict[str, list[float]] = {}
                    cpu: dict[str, list[float]] = {}  # CPU seconds per MB moved
                    details: dict[str, list[dict[str, Any]]] = {}

                    def add(key: str, value: float, cpu_s: float | None = None) -> None:
                        runs.setdefault(key, []).append(value)
                        if cpu_s is not None:
                            cpu.setdefault(key, []).append(cpu_s / (size / 1e6))

                    node_pids = pair_pids
                    variant_rss: dict[str, list[float]] = {}
                    if args.libtorrent:
                        # The same source file, seeded by libtorrent (libtorrent_ref.py).
                        torrents = libtorrent_ref.Reference(source, chunk_sizes, workdir)
                        stack.callback(torrents.close)
                    lt_after = args.libtorrent and not args.libtorrent_each_round

                    def libtorrent_round(round_: int, chunk: int) -> None:
                        label = ref.size_label(chunk)
                        for version in libtorrent_ref.VERSIONS:
                            lt = torrents.run(chunk, version)
                            add(f"libtorrent_{version} {label}", lt["mb_s"])
                            add(f"libtorrent_{version}_add {label}", lt["mb_s_from_add"])
                            lt_rss.append(lt["peak_rss_mb"])
                            log(
                                f"round {round_ + 1} chunk {label}: libtorrent {version} "
                                f"{lt['mb_s']:.1f} MB/s ({lt['mb_s_from_add']:.1f} from add)"
                            )

                    for round_ in range(args.repeat):
                        add("raw_tcp", ref.raw_tcp_once(tcp_port, size))
                        with ref.CpuMeter([grpc_pid]) as used:
                            down = await ref.grpc_download_once(channel, size, MIB)
                        add("grpc_stream_1MiB", down, used.seconds)
                        with ref.CpuMeter([grpc_pid]) as used:
                            up = await ref.grpc_upload_once(channel, size, MIB)
                        add("grpc_upload_1MiB", up, used.seconds)
                        with ref.CpuMeter() as used:
                            disk = ref.disk_fsync_once(workdir, size)
                        add("disk_fsync", disk, used.seconds)
                        with ref.CpuMeter() as used:
                            sha = ref.sha256_once(size)
                        add("sha256", sha, used.seconds)
                        log(
                            f"round {round_ + 1} references: "
                            + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items() if " " not in k)
                        )
                        for chunk in chunk_sizes:
                            label = ref.size_label(chunk)
                            name = f"bench-{label}-r{round_}"
                            out = workdir / f"got-{label}.bin"
                            if not await all_missing(putter, source, name, chunk):
                                raise RuntimeError(f"{name}: the owner already has chunks")
                            result = await one_transfer(
                                putter, getter, source, out, name, chunk, node_pids
                            )
                            add(f"put {label}", result["put_mb_s"], result["put_cpu_s"])
                            add(f"get {label}", result["get_mb_s"], result["get_cpu_s"])
                            details.setdefault(label, []).append(result)
                            # The same file from the same node, with the get's data path in
                            # plain threads (threaded_get.py).
                            os.unlink(out)
                            [holder] = [a for a, n in result["sources"].items() if n]
                            started = time.perf_counter()
                            with ref.CpuMeter(node_pids) as used:
                                await asyncio.to_thread(
                                    threaded_get.threaded_get, holder, result["manifest"], out
                                )
                            threaded = ref.mb_s(size, time.perf_counter() - started)
                            add(f"threaded_get {label}", threaded, used.seconds)
                            log(
                                f"round {round_ + 1} chunk {label}: put "
                                f"{result['put_mb_s']:.1f} MB/s, get {result['get_mb_s']:.1f}"
                                f" MB/s (threaded {threaded:.1f}), sources {result['sources']}"
                            )
                            variants = list(args.get_variants)
                            if plain_putter is not None:
                                await plain_putter.files.put(source, name, chunk_size=chunk)
                            # Each round starts with another variant: none is always first.
                            shift = round_ % max(1, len(variants))
                            for variant in variants[shift:] + variants[:shift]:
                                plain = not VARIANTS[variant]["malloc"]
                                with contextlib.suppress(FileNotFoundError):
                                    os.unlink(out)
                                got = await asyncio.to_thread(
                                    get_in_worker,
                                    variant,
                                    d.address if plain else b.address,
                                    name,
                                    out,
                                    plain_pids if plain else node_pids,
                                )
                                add(f"get_{variant} {label}", got["mb_s"], got["cpu_s"])
                                variant_rss.setdefault(variant, []).append(got["peak_rss_mb"])
                                log(
                                    f"round {round_ + 1} chunk {label}: get variant {variant} "
                                    f"{got['mb_s']:.1f} MB/s, peak RSS {got['peak_rss_mb']} MB"
                                )
                            if plain_putter is not None:
                                await drop(plain_putter, name, out)
                            await drop(putter, name, out)
                            if args.libtorrent and not lt_after:
                                await asyncio.to_thread(libtorrent_round, round_, chunk)
                    # libtorrent's rounds come after chordshare's: its leechers write
                    # through the page cache, and once their output is deleted the host
                    # takes those pages back, which made the next chordshare put about
                    # 30 % slower when the two were interleaved (README, Benchmarks).
                    # With --libtorrent-each-round they run in each round instead, so each
                    # round's get and libtorrent see the same load from the rest of the host.
                    for round_ in range(args.repeat if lt_after else 0):
                        for chunk in chunk_sizes:
                            libtorrent_round(round_, chunk)
        finally:
            await putter.close()
            await getter.close()
            if plain_putter is not None:
                await plain_putter.close()
    finally:
        nodes.close()
        with contextlib.suppress(FileNotFoundError):
            source.unlink()

    med = {k: statistics.median(v) for k, v in runs.items()}
    cpu_per_mb = {k: statistics.median(v) for k, v in cpu.items()}
    floor = min(med["grpc_stream_1MiB"], med["disk_fsync"])
    # The ceiling takes each reference's cheapest round: on this VM a round that lands on
    # memory the host has not yet backed costs several times the CPU (README, Benchmarks),
    # and an upper bound must not count that against the transfers.
    ceiling = cpu_ceiling({k: min(v) for k, v in cpu.items()}, floor)
    floor_up = min(med["grpc_upload_1MiB"], med["disk_fsync"])
    transfers: dict[str, Any] = {}
    for chunk in chunk_sizes:
        label = ref.size_label(chunk)
        put, get = med[f"put {label}"], med[f"get {label}"]
        transfers[label] = {
            "put_mb_s": ref.summary(runs[f"put {label}"]),
            "get_mb_s": ref.summary(runs[f"get {label}"]),
            "chunks": details[label][0]["chunks"],
            "get_sources": details[label][0]["sources"],
            "put_cpu_s_per_mb": round(cpu_per_mb[f"put {label}"], 5),
            "get_cpu_s_per_mb": round(cpu_per_mb[f"get {label}"], 5),
            "put_ratio": round(put / floor, 3),
            "get_ratio": round(get / floor, 3),
            "put_ratio_vs_grpc_upload": round(put / floor_up, 3),
            "threaded_get_mb_s": ref.summary(runs[f"threaded_get {label}"]),
            "threaded_get_cpu_s_per_mb": round(cpu_per_mb[f"threaded_get {label}"], 5),
            "target_met": put / floor >= TARGET_RATIO and get / floor >= TARGET_RATIO,
        }
        if args.libtorrent:
            lt_runs = {v: runs[f"libtorrent_{v} {label}"] for v in libtorrent_ref.VERSIONS}
            transfers[label]["libtorrent_get_mb_s"] = {
                v: ref.summary(r) for v, r in lt_runs.items()
            }
            transfers[label]["libtorrent_get_from_add_mb_s"] = {
                v: ref.summary(runs[f"libtorrent_{v}_add {label}"]) for v in libtorrent_ref.VERSIONS
            }
            transfers[label]["get_vs_libtorrent"] = {
                v: round(get / statistics.median(r), 3) for v, r in lt_runs.items()
            }
        transfers[label]["get_variants"] = variant_report(
            args, runs, cpu_per_mb, variant_rss, label
        )
    if args.libtorrent:
        libtorrent = {
            "version": libtorrent_ref.available(),
            "setup": (
                "a seeder process and a fresh leecher process per run, on loopback, piece "
                "size = chunk size; timed from the leecher's connection to the seeder (its "
                "wait for libtorrent's session tick left out; from_add counts it) to "
                "every piece verified and the file fsynced (bench/libtorrent_ref.py)"
            ),
            "leecher_peak_rss_mb": max(lt_rss),
        }
    else:
        libtorrent = {"skipped": "not installed (pip install -e '.[bench]') or --no-libtorrent"}
    return {
        "setup": (
            f"2 node processes on loopback, --replicas {REPLICAS}: a put is one transfer "
            "client->owner, a get one transfer owner->client (in-process FileClient on "
            "uvloop; put via node A, get via node B)"
        ),
        "nodes": {"a": a.address, "b": b.address},
        "references_mb_s": {
            "raw_tcp": ref.summary(runs["raw_tcp"]),
            "grpc_stream_1MiB": ref.summary(runs["grpc_stream_1MiB"]),
            "grpc_upload_1MiB": ref.summary(runs["grpc_upload_1MiB"]),
            "disk_fsync": ref.summary(runs["disk_fsync"]),
            "sha256": ref.summary(runs["sha256"]),
        },
        "ratio_floor_mb_s": {
            "min_grpc_stream_disk": round(floor, 1),
            "min_grpc_upload_disk": round(floor_up, 1),
        },
        "transfers": transfers,
        "libtorrent": libtorrent,
        "cpu_ceiling": ceiling,
        "target_ratio": TARGET_RATIO,
        "target_met": all(t["target_met"] for t in transfers.values()),
    }


def variant_report(
    args: argparse.Namespace,
    runs: dict[str, list[float]],
    cpu_per_mb: dict[str, float],
    rss: dict[str, list[float]],
    label: str,
) -> dict[str, Any]:
    """Each get variant's MB/s, CPU and peak RSS; its MB/s over the `product` variant's in
    the same round, and its median over libtorrent's."""
    report: dict[str, Any] = {}
    for variant in args.get_variants:
        mine = runs[f"get_{variant} {label}"]
        median = statistics.median(mine)
        entry: dict[str, Any] = {
            "setup": VARIANTS[variant],
            "get_mb_s": ref.summary(mine),
            "cpu_s_per_mb": round(cpu_per_mb[f"get_{variant} {label}"], 5),
            "worker_peak_rss_mb": max(rss[variant]),
        }
        base = runs.get(f"get_product {label}")
        if base is not None and variant != "product":
            entry["vs_product_same_round"] = [
                round(m / t, 3) for m, t in zip(mine, base, strict=True)
            ]
        if args.libtorrent and args.libtorrent_each_round:
            entry["vs_libtorrent_v1_same_round"] = [
                round(m / lt, 3) for m, lt in zip(mine, runs[f"libtorrent_v1 {label}"], strict=True)
            ]
        if args.libtorrent:
            entry["vs_libtorrent"] = {
                v: round(median / statistics.median(runs[f"libtorrent_{v} {label}"]), 3)
                for v in libtorrent_ref.VERSIONS
            }
        report[variant] = entry
    return report


def cpu_ceiling(cpu_per_mb: dict[str, float], floor: float) -> dict[str, Any]:
    """The fastest a put and a get could be on this machine, from CPU cost alone.

    Whatever the code, a get moves the bytes over a gRPC stream, hashes them once (each
    chunk as it arrives) and writes them to disk; a put moves them
    the other way and hashes them four times (the client builds the manifest: chunks and
    whole; the owner checks both). Each of those costs at least what its reference cost
    in CPU seconds per MB in its cheapest round of this run (the stream's counting both of
    its ends), and the machine has `cores` CPUs to spend them: MB/s <= cores / (sum of
    those costs).
    If that ceiling is under TARGET_RATIO of the reference floor, no implementation can
    meet the target here."""
    cores = len(os.sched_getaffinity(0))
    sha = cpu_per_mb["sha256"]
    disk = cpu_per_mb["disk_fsync"]
    get_cost = cpu_per_mb["grpc_stream_1MiB"] + GET_HASH_PASSES * sha + disk
    put_cost = cpu_per_mb["grpc_upload_1MiB"] + PUT_HASH_PASSES * sha + disk
    get_max, put_max = cores / get_cost, cores / put_cost
    return {
        "cores": cores,
        "reference_cpu_s_per_mb_cheapest_round": {
            k: round(v, 5) for k, v in cpu_per_mb.items() if not k.startswith(("put", "get"))
        },
        "hash_passes": {"get": GET_HASH_PASSES, "put": PUT_HASH_PASSES},
        "get_max_mb_s": round(get_max, 1),
        "put_max_mb_s": round(put_max, 1),
        "get_max_ratio": round(get_max / floor, 3),
        "put_max_ratio": round(put_max / floor, 3),
        "target_reachable": min(get_max, put_max) / floor >= TARGET_RATIO,
    }


# --------------------------------------------------------------------------- memory


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size of a live process (VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Sampler:
    """Reads VmHWM of some pids every `interval` seconds in a thread; keeps the maximum."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, pid: int) -> None:
        with self._lock:
            self.pids.add(pid)

    def unwatch(self, pid: int) -> None:
        with self._lock:
            self.pids.discard(pid)

    def sample(self) -> None:
        with self._lock:
            pids = list(self.pids)
        for pid in pids:
            kib = vm_hwm_kib(pid)
            if kib is not None:
                self.peaks[pid] = max(self.peaks.get(pid, 0), kib)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ru_maxrss of a child counts the memory image it was forked from (Linux folds the old mm's
# high-water mark into it at exec), so a CLI forked straight from this benchmark process
# would report this process's size. A tiny wrapper (a bare `python -c`, ~10 MB) forks and
# execs the CLI instead and reports wait4's ru_maxrss of it; it also tells us the CLI's pid
# so that its VmHWM can be sampled.
_WRAPPER = r"""
import ctypes, os, sys
pid = os.fork()
if pid == 0:
    try:
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass
    os.execv(sys.argv[1], sys.argv[1:])
sys.stderr.write("WRAPPED_PID %d\n" % pid)
sys.stderr.flush()
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("WRAPPED_MAXRSS_KIB %d\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_cli_measured(argv: list[str], sampler: Sampler, timeout: float) -> dict[str, Any]:
    """Run a CLI command; its seconds, JSON answer and peak RSS (ru_maxrss from the wrapper,
    and VmHWM sampled every 10 ms)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *CLI, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=node_procs.die_with_parent,
    )
    out_chunks: list[bytes] = []
    err_lines: list[bytes] = []
    child: list[int] = []

    def drain_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out_chunks.append(line)

    def drain_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(b"WRAPPED_PID ") and not child:
                child.append(int(line.split()[1]))
                sampler.watch(child[0])
            err_lines.append(line)

    readers = [
        threading.Thread(target=drain_out, daemon=True),
        threading.Thread(target=drain_err, daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        while proc.poll() is None:
            if child:
                sampler.sample()
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"chordshare {' '.join(argv)} took more than {timeout} s")
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            for pid in (*child, proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
        for reader in readers:
            reader.join(5)
        if child:
            sampler.unwatch(child[0])
    seconds = time.perf_counter() - started
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_lines).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"chordshare {' '.join(argv)} exited {proc.returncode}: {stderr}")
    found = re.search(r"WRAPPED_MAXRSS_KIB (\d+)", stderr)
    maxrss_kib = int(found[1]) if found else 0
    sampled_kib = sampler.peaks.get(child[0], 0) if child else 0
    return {
        "seconds": seconds,
        "json": json.loads(stdout),
        "peak_rss_mb": round(max(maxrss_kib, sampled_kib) * 1024 / 1e6, 1),
        "ru_maxrss_mb": round(maxrss_kib * 1024 / 1e6, 1),
        "sampled_peak_rss_mb": round(sampled_kib * 1024 / 1e6, 1),
    }


def reset_hwm(pid: int) -> bool:
    """Restart a process's VmHWM from its current RSS (Linux: "5" to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def node_peaks_mb(nodes: Nodes, sampler: Sampler) -> dict[str, float]:
    return {
        n.address: round(sampler.peaks.get(n.popen.pid, 0) * 1024 / 1e6, 1) for n in nodes.nodes
    }


def memory(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    size = int(args.big_gib * (1 << 30))
    big = workdir / "big.bin"
    out = workdir / "big.out"
    log(f"writing a random file of {args.big_gib} GiB")
    write_random(big, size)
    nodes = Nodes(workdir / "rss")
    nodes.workdir.mkdir()
    try:
        a = nodes.start("a")
        b = nodes.start("b", join=a.address)
        asyncio.run(wait_ring(a.address, 2))
        idle = {n.address: vm_hwm_kib(n.popen.pid) for n in nodes.nodes}
        with Sampler() as sampler:
            for node in nodes.nodes:
                sampler.watch(node.popen.pid)
            timeout = 60 + size / 5e6
            log("chordshare put")
            put = run_cli_measured(
                ["put", str(big), "--node", a.address, "--name", "big.bin", "--json"],
                sampler,
                timeout,
            )
            log(f"put: {put['seconds']:.1f} s, CLI peak {put['peak_rss_mb']} MB")
            sampler.sample()
            put_peaks = node_peaks_mb(nodes, sampler)
            # The target is the peak during the get: restart the nodes' high-water marks.
            get_only = all(reset_hwm(n.popen.pid) for n in nodes.nodes)
            sampler.peaks.clear()
            log("chordshare get")
            get = run_cli_measured(
                ["get", "big.bin", "-o", str(out), "--node", b.address, "--json"],
                sampler,
                timeout,
            )
            log(f"get: {get['seconds']:.1f} s, CLI peak {get['peak_rss_mb']} MB")
            sampler.sample()
            get_peaks = node_peaks_mb(nodes, sampler)
    finally:
        nodes.close()
        for path in (big, out):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    if get["json"]["sha256"] != put["json"]["sha256"]:
        raise RuntimeError("the 1 GiB file got back differs from the one put")
    holder = [s["address"] for s in get["json"]["sources"] if s["bytes"]]
    worst = max([*get_peaks.values(), get["peak_rss_mb"]])
    return {
        "file_bytes": size,
        "setup": "2 fresh nodes, --replicas 1; CLI put via node A, CLI get via node B",
        "holder": holder,
        "node_idle_peak_rss_mb": {k: round((v or 0) * 1024 / 1e6, 1) for k, v in idle.items()},
        "node_peak_rss_mb_during_put": put_peaks,
        # With the high-water marks restarted before the get (/proc/PID/clear_refs), the
        # peak during the get; else (not allowed here) the peak over the put and the get.
        "node_peak_rss_mb_during_get": get_peaks,
        "node_get_peak_is_get_only": get_only,
        "cli_put": {
            "seconds": round(put["seconds"], 2),
            "mb_s_incl_startup": round(ref.mb_s(size, put["seconds"]), 1),
            "peak_rss_mb": put["peak_rss_mb"],
            "ru_maxrss_mb": put["ru_maxrss_mb"],
            "sampled_peak_rss_mb": put["sampled_peak_rss_mb"],
        },
        "cli_get": {
            "seconds": round(get["seconds"], 2),
            "mb_s_incl_startup": round(ref.mb_s(size, get["seconds"]), 1),
            "peak_rss_mb": get["peak_rss_mb"],
            "ru_maxrss_mb": get["ru_maxrss_mb"],
            "sampled_peak_rss_mb": get["sampled_peak_rss_mb"],
        },
        "target": "peak RSS of each node and of the CLI during the get",
        "target_rss_mb": TARGET_RSS_MB,
        "target_met": worst <= TARGET_RSS_MB,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    if sys.argv[1:2] == ["--get-worker"]:
        get_worker(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument(
        "--chunk-kib",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        default=[256, 1024, 4096],
        help="comma-separated chunk sizes in KiB",
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--big-gib", type=float, default=1.0, help="file size for the RSS test")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--dir", default=None, help="parent of the temp dir (default: /tmp)")
    parser.add_argument(
        "--disk-cap-mb-s",
        type=float,
        default=None,
        help="cap the disk writes of this run (references included) at this rate, to "
        "measure the disk-bound case on demand (root; see bench/disk_cap.py)",
    )
    parser.add_argument(
        "--get-variants",
        type=lambda s: [x for x in s.split(",") if x.strip()],
        default=[],
        help=f"comma-separated get variants to measure in worker processes: {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--libtorrent-each-round",
        action="store_true",
        help="run libtorrent's downloads in each round, right after chordshare's gets, "
        "instead of after all the rounds (same-round ratios in get_variants)",
    )
    parser.add_argument(
        "--no-libtorrent",
        dest="libtorrent",
        action="store_false",
        help="skip the libtorrent reference (skipped anyway when it is not installed)",
    )
    args = parser.parse_args()
    if unknown := set(args.get_variants) - set(VARIANTS):
        parser.error(f"unknown get variants: {', '.join(sorted(unknown))}")
    args.libtorrent = args.libtorrent and libtorrent_ref.available() is not None
    if args.size_mib < 1 or args.repeat < 1 or not args.chunk_kib:
        parser.error("--size-mib, --repeat and --chunk-kib must be positive")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # This process is the client of the throughput rounds: set malloc up as the CLI does.
    malloc = tune_malloc()
    began = time.perf_counter()
    report: dict[str, Any] = {
        "unit": "MB/s (10^6 bytes/s)",
        "size_mib": args.size_mib,
        "chunk_kib": args.chunk_kib,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "loop": ref.loop_name(True),
        "client_malloc_settings": malloc,
    }
    with (
        tempfile.TemporaryDirectory(prefix="chordshare-transfer-", dir=args.dir) as tmp,
        contextlib.ExitStack() as capped,
    ):
        workdir = Path(tmp)
        report["dir"] = str(workdir)
        report["filesystem"] = ref.filesystem_of(workdir)
        if args.disk_cap_mb_s:
            # Before any process starts: the nodes and reference servers inherit the cap.
            report["disk_cap"] = capped.enter_context(write_cap(workdir, args.disk_cap_mb_s))
            log(report["disk_cap"])
        report["throughput"] = ref.run_loop(throughput(args, workdir))
        if not args.skip_rss:
            report["memory"] = memory(args, workdir)
    report["elapsed_s"] = round(time.perf_counter() - began, 1)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
