"""A folder of many small files against one large file of the same bytes, put and got
through a ring of real node processes.

Starts ``--nodes`` `chordshare node` processes on loopback (default 4, ``--replicas``
copies of every file, default 3), waits until the ring is formed and ``--settle`` seconds
more, then (``--pause`` seconds between each put and its get) from an in-process client
connected to one node (on uvloop, like the CLI; a new client for each op, as every CLI
command is, its process start not counted):

- the reference: puts one file of ``--files`` x ``--size`` bytes (default 10,000 x 4 KiB,
  40 MB) with ``FileClient.put``;
- the folder: a tree of the same number of files of ``--size`` random bytes, in
  subfolders of 100, put with ``FolderClient.put`` (``--width`` files in flight, default
  the client's);
- then ``--repeat`` rounds, each: the file got back with ``FileClient.get``, the folder
  with ``FolderClient.get`` (both checked byte for byte after the first round), and the
  floor: the same tree's files, read into memory first, written by plain Python (make
  the folders; open, write, close each file), no network: what any get of the folder
  pays the file system, whatever it does besides. Medians are reported, and the get
  ratio is the median of the rounds' ratios.

Target: the folder's put and its get each take at most 3x the time of the large file's.
Prints one JSON object on stdout; progress goes to stderr. Every node process is killed at
the end, also on errors and Ctrl-C.

    .venv/bin/python bench/folders.py [--nodes 4] [--files 10000] [--size 4096]
        [--replicas 3] [--width 48] [--settle 21] [--pause 3] [--repeat 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import filecmp
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from small_files import Ring  # bench/ is the script's directory, so on sys.path

from chordshare.files.publisher import Signer
from chordshare.sharing.client import FileClient
from chordshare.sharing.folder_client import IN_FLIGHT, FolderClient
from chordshare.sharing.ring import RemoteRing
from chordshare.transport.client import NodeClient
from chordshare.transport.files_grpc import GrpcFilePeers

TARGET_RATIO = 3.0


def log(message: str) -> None:
    print(f"[folders {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_tree(root: Path, files: int, size: int, rng: random.Random) -> bytes:
    """`files` files of `size` random bytes in subfolders of 100; all their bytes."""
    every = bytearray()
    for index in range(files):
        path = root / f"d{index // 100:03d}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        path.write_bytes(data)
        every += data
    return bytes(every)


def read_tree(source: Path) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(source):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, source)] = Path(path).read_bytes()
    return found


def write_plainly(files: dict[str, bytes], dest: Path) -> None:
    """The floor of a folder's get: its files written with nothing else to do."""
    for folder in sorted({os.path.dirname(path) for path in files}):
        os.makedirs(os.path.join(dest, folder), exist_ok=True)
    for path, data in files.items():
        fd = os.open(os.path.join(dest, path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)


async def timed(what: str, work: Any) -> float:
    started = time.perf_counter()
    await work
    took = time.perf_counter() - started
    log(f"{what}: {took:.2f} s")
    return took


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tree = workdir / "tree"
    whole = workdir / "whole.bin"
    whole.write_bytes(make_tree(tree, args.files, args.size, rng))
    ring = Ring(workdir, args.replicas)
    signer = Signer.generate()
    report: dict[str, Any] = {
        "config": {
            "nodes": args.nodes,
            "replicas": args.replicas,
            "files": args.files,
            "size_bytes": args.size,
            "whole_bytes": whole.stat().st_size,
            "width": args.width,
            "pause_s": args.pause,
            "repeat": args.repeat,
            "dir": args.dir or tempfile.gettempdir(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
        }
    }
    try:
        log(f"starting {args.nodes} nodes")
        refs = await ring.start(args.nodes)
        await ring.converge(refs)
        if args.settle > 0:
            log(f"letting the ring settle for {args.settle:g} s")
            await asyncio.sleep(args.settle)
        node = await NodeClient.connect(refs[0].address)
        peers = GrpcFilePeers(health=node.transport.health)

        def client() -> FileClient:
            return FileClient(RemoteRing(node), peers, args.replicas, signer=signer)

        try:
            put_whole = await timed("put one file", client().put(whole, "whole.bin"))
            put_tree = await timed(
                "put the folder", FolderClient(client(), args.width).put(tree, "tree")
            )
            await asyncio.sleep(args.pause)
            files = read_tree(tree)
            rounds = []
            for round_ in range(args.repeat):
                # Each round gets both, one after the other, so that the machine's noise
                # falls on both alike; the medians are reported.
                got_whole, got_tree = workdir / f"w{round_}", workdir / f"t{round_}"
                rounds.append(
                    (
                        await timed("get one file", client().get("whole.bin", got_whole)),
                        await timed(
                            "get the folder",
                            FolderClient(client(), args.width).get("tree", got_tree),
                        ),
                        await timed(
                            "write the folder's files plainly",
                            asyncio.to_thread(write_plainly, files, workdir / f"plain{round_}"),
                        ),
                    )
                )
        finally:
            await peers.close()
            await node.close()
        same = filecmp.cmp(whole, workdir / "w0", shallow=False) and not (
            filecmp.dircmp(tree, workdir / "t0").diff_files
        )
        medians = (statistics.median(column) for column in zip(*rounds, strict=True))
        get_whole, get_tree, floor = medians
        put_ratio = put_tree / put_whole
        get_ratio = statistics.median(tree_s / whole_s for whole_s, tree_s, _ in rounds)
        report["one_file"] = {"put_s": round(put_whole, 2), "get_s": round(get_whole, 2)}
        report["folder"] = {
            "put_s": round(put_tree, 2),
            "get_s": round(get_tree, 2),
            "put_files_per_s": round(args.files / put_tree),
            "get_files_per_s": round(args.files / get_tree),
            "plain_write_s": round(floor, 2),
        }
        report["ratio"] = {"put": round(put_ratio, 2), "get": round(get_ratio, 2)}
        report["bytes_match"] = same
        report["target"] = {
            "ratio_at_most": TARGET_RATIO,
            "met": same and put_ratio <= TARGET_RATIO and get_ratio <= TARGET_RATIO,
        }
        return report
    finally:
        ring.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--width", type=int, default=IN_FLIGHT, help="files in flight")
    parser.add_argument("--settle", type=float, default=21.0)
    parser.add_argument(
        "--pause",
        type=float,
        default=3.0,
        help="seconds between a put and its get: the nodes copy and index what was put "
        "(on machines of their own in a real ring, on this one's cores here)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of gets (medians)")
    parser.add_argument("--dir", default=None, help="parent of the temp dir (default: /tmp)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chordshare-folders-", dir=args.dir) as tmp:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from references import run_loop  # uvloop, like the CLI

        report = run_loop(bench(args, Path(tmp)))
    report["elapsed_s"] = round(time.perf_counter() - began, 1)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
