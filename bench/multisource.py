"""Multi-source download where the links are the limit, on 4 network namespaces.

Loopback has no links to saturate, so a download from 3 holders there measures CPUs, not
what pulling from several holders buys. Here each of 4 hosts is a network namespace on a
bridge (the harness of tests/system/netns.py: nothing touches the machine's own network)
and every host's egress is capped with tc (a token bucket, ``--rate``, 100 Mbit/s by
default), so each holder can send at most one link's worth and only the getter's
(uncapped) ingress sees their sum. In one run:

1. the ceiling: raw TCP through one capped link, ``--tcp-mib`` sent by a plain socket from
   each holder's namespace to the getter's (measured at the receiver, accept to EOF);
2. a random ``--size-mib`` file is put with 3 replicas on a ring of 4 ``chordshare node``
   processes (each started from its node.yaml, as the container does); the getter is the
   host that does not hold it (``ls --all``);
3. inside the getter's namespace, ``FileClient.find`` then ``download`` (the code `get`
   runs) with ``holders=[h]`` for each holder alone, and with all 3 holders at once, each
   ``--repeat`` times into a fresh path (MB/s of the ``download`` call: fetching, verifying,
   writing, fsync, rename; the lookup is not counted).

MB is 10^6 bytes. Targets: one holder >= 97% of the ceiling (medians), all holders >= 2.9x
one holder. Prints one JSON object on stdout, progress on stderr. Must run as root; the
namespaces, bridge and processes are removed at the end, also on errors.

    sudo .venv/bin/python bench/multisource.py [--size-mib 64] [--rate 100mbit]
        [--tcp-mib 32] [--repeat 2] [--per-peer-inflight N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests" / "system"))

from netns import Host, Network, unavailable_reason, wait_for  # noqa: E402

MB = 1_000_000
MIB = 1024 * 1024
TCP_PORT = 9000
ONE_HOLDER_TARGET = 0.97
ALL_HOLDERS_TARGET = 2.9


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- workers, run inside a namespace by re-invoking this script ----------------------------


def worker_recv(bind: str) -> None:
    """Accept one connection, read to EOF; print {"bytes", "seconds"}."""
    host, port = bind.rsplit(":", 1)
    with socket.create_server((host, int(port))) as server:
        print("listening", flush=True)
        conn, _ = server.accept()
        with conn:
            started = time.perf_counter()
            total = 0
            buf = bytearray(4 * MIB)
            while True:
                n = conn.recv_into(buf)
                if not n:
                    break
                total += n
            seconds = time.perf_counter() - started
    print(json.dumps({"bytes": total, "seconds": seconds}), flush=True)


def worker_send(to: str, size: int) -> None:
    host, port = to.rsplit(":", 1)
    block = os.urandom(MIB)
    with socket.create_connection((host, int(port))) as conn:
        sent = 0
        while sent < size:
            piece = block[: min(MIB, size - sent)]
            conn.sendall(piece)
            sent += len(piece)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # wait for the receiver to close: all bytes are through


def worker_download(
    node: str, name: str, plan: list[list[str]], out_dir: str, inflight: int
) -> None:
    """For every holder set in `plan`, download the file from just those holders; print
    [{"holders", "bytes", "seconds", "sources"}]."""
    from chordshare.sharing.client import FileClient
    from chordshare.sharing.download import download
    from chordshare.sharing.ring import RemoteRing
    from chordshare.transport.client import NodeClient
    from chordshare.transport.files_grpc import GrpcFilePeers

    async def go() -> list[dict[str, Any]]:
        client = await NodeClient.connect(node)
        peers = GrpcFilePeers(health=client.transport.health)
        results = []
        try:
            files = FileClient(RemoteRing(client), peers, 3)
            found = await files.find(name)
            for i, holders in enumerate(plan):
                missing = set(holders) - set(found.holders)
                if missing:
                    raise SystemExit(f"{missing} do not hold {name}: {found.holders}")
                out = Path(out_dir) / f"download-{i}"
                started = time.perf_counter()
                tuning = {"per_peer_inflight": inflight} if inflight else {}
                report = await download(found.manifest, holders, peers.fetch_chunks, out, **tuning)
                seconds = time.perf_counter() - started
                assert report.sha256 == found.manifest.sha256
                out.unlink()
                results.append(
                    {
                        "holders": holders,
                        "bytes": report.size,
                        "seconds": seconds,
                        "sources": report.sources,
                    }
                )
        finally:
            await peers.close()
            await client.close()
        return results

    print(json.dumps(asyncio.run(go())), flush=True)


# --- the run ---------------------------------------------------------------------------------


def in_ns(host: Host, *args: str) -> list[str]:
    return ["ip", "netns", "exec", host.ns, sys.executable, str(HERE), *args]


def tcp_ceiling(sender: Host, receiver: Host, size: int) -> float:
    """MB/s of raw TCP from sender to receiver (through sender's capped egress)."""
    bind = f"{receiver.ip}:{TCP_PORT}"
    recv = subprocess.Popen(in_ns(receiver, "_recv", bind), stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout is not None
        if recv.stdout.readline().strip() != "listening":
            raise RuntimeError("receiver did not start")
        subprocess.run(in_ns(sender, "_send", bind, str(size)), check=True, timeout=120)
        result = json.loads(recv.stdout.readline())
        recv.wait(10)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    assert result["bytes"] == size, result
    return float(result["bytes"] / result["seconds"] / MB)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for _ in range(0, size, 4 * MIB):
            f.write(os.urandom(4 * MIB))
        f.truncate(size)


def measure(args: argparse.Namespace, net: Network, work: Path) -> dict[str, Any]:
    net.create(4)
    for host in net.hosts:
        net.cap_egress(host, args.rate)
    log(f"network {net.prefix} on {net.subnet}, egress capped at {args.rate}")
    net.start_all(replicas=3)
    wait_for(
        "a ring of 4", lambda: _assert_len(net.ring(net.hosts[0]), 4), timeout=30, interval=0.5
    )
    path = work / "big.bin"
    write_random(path, args.size_mib * MIB)
    name = path.name
    log(f"putting {args.size_mib} MiB with 3 replicas")
    put = net.cli_json(net.hosts[0], "put", str(path), "--node", net.hosts[0].address, timeout=300)

    def three_holders() -> list[str]:
        listing = net.cli_json(net.hosts[0], "ls", "--all", "--node", net.hosts[0].address)
        entry = next(f for f in listing["files"] if f["name"] == name)
        assert len(entry["holders"]) == 3, entry["holders"]
        return list(entry["holders"])

    holders = wait_for("3 holders", three_holders, timeout=120, interval=1.0)
    getter = next(h for h in net.hosts if h.address not in holders)
    by_address = {h.address: h for h in net.hosts}
    log(f"holders {holders}; getter {getter.address}")

    ceilings: dict[str, list[float]] = {h: [] for h in holders}
    for _ in range(args.repeat):
        for holder in holders:
            ceilings[holder].append(tcp_ceiling(by_address[holder], getter, args.tcp_mib * MIB))
    log(f"TCP ceilings MB/s: {ceilings}")

    plan = [[h] for h in holders] * args.repeat + [holders] * args.repeat
    out_dir = work / "out"
    out_dir.mkdir()
    worker = [getter.address, name, json.dumps(plan), str(out_dir), str(args.per_peer_inflight)]
    done = subprocess.run(
        in_ns(getter, "_download", *worker),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"download worker failed: {done.stderr}")
    runs = json.loads(done.stdout)
    for run in runs:
        run["mb_s"] = run["bytes"] / run["seconds"] / MB
    one = [r["mb_s"] for r in runs if len(r["holders"]) == 1]
    every = [r["mb_s"] for r in runs if len(r["holders"]) == 3]
    ceiling = statistics.median(v for values in ceilings.values() for v in values)
    one_mb_s = statistics.median(one)
    all_mb_s = statistics.median(every)
    one_ratio = one_mb_s / ceiling
    all_ratio = all_mb_s / one_mb_s
    return {
        "network": {
            "hosts": 4,
            "subnet": str(net.subnet),
            "egress_cap": args.rate,
            "node_started_with": "--config" if net.use_config else "flags",
        },
        "file": {"size_mib": args.size_mib, "sha256": put["sha256"], "replicas": 3},
        "per_peer_inflight": args.per_peer_inflight or "default",
        "holders": holders,
        "getter": getter.address,
        "ceiling_mb_s": round(ceiling, 3),
        "ceiling_runs_mb_s": {h: [round(v, 3) for v in vs] for h, vs in ceilings.items()},
        "one_holder_mb_s": round(one_mb_s, 3),
        "all_holders_mb_s": round(all_mb_s, 3),
        "runs": [
            {
                "holders": r["holders"],
                "mb_s": round(r["mb_s"], 3),
                "seconds": round(r["seconds"], 3),
                "sources_mib": {a: round(b / MIB, 1) for a, b in r["sources"].items()},
            }
            for r in runs
        ],
        "ratios": {
            "one_holder_over_ceiling": round(one_ratio, 4),
            "all_over_one_holder": round(all_ratio, 3),
        },
        "targets": {
            "one_holder_over_ceiling": ONE_HOLDER_TARGET,
            "all_over_one_holder": ALL_HOLDERS_TARGET,
        },
        "targets_met": {
            "one_holder": one_ratio >= ONE_HOLDER_TARGET,
            "all_holders": all_ratio >= ALL_HOLDERS_TARGET,
        },
    }


def _assert_len(items: list[str], count: int) -> None:
    assert len(items) == count, items


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        worker, rest = sys.argv[1], sys.argv[2:]
        if worker == "_recv":
            worker_recv(rest[0])
        elif worker == "_send":
            worker_send(rest[0], int(rest[1]))
        elif worker == "_download":
            worker_download(rest[0], rest[1], json.loads(rest[2]), rest[3], int(rest[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rate", default="100mbit")
    parser.add_argument("--tcp-mib", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--per-peer-inflight",
        type=int,
        default=0,
        help="chunks outstanding per holder in download() (0: the library's default)",
    )
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    with tempfile.TemporaryDirectory(prefix="multisource-") as tmp:
        net = Network(Path(tmp))
        try:
            result = measure(args, net, Path(tmp))
        except BaseException:
            log(net.logs())
            raise
        finally:
            left = net.destroy()
            if left:
                log(f"left behind: {left}")
    result["cleanup_complete"] = not left
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
