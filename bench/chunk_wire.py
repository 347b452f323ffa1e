"""Chunk messages coded by `transport/chunk_wire.py` against protobuf's own, in one run.

For each chunk size, encodes and decodes `--mib` MiB of ChunkData messages both ways, as a
node serving a get and a client receiving it would (protobuf: build the message, serialize
it, parse it and take its data out; chunk_wire: encode with one copy, decode to a view),
best of `--repeat` rounds each, interleaved. Prints one JSON document: MB/s of each path
and the ratio. chunk_wire stays only while the ratio shows it pays.

Usage: .venv/bin/python bench/chunk_wire.py [--mib 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from chordshare.transport import chunk_wire
from chordshare.v1 import files_pb2 as pb

SIZES = (256 * 1024, 1024 * 1024)


def protobuf_round(data: bytes, count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        raw = pb.ChunkData(index=index, data=data).SerializeToString()
        got = pb.ChunkData.FromString(raw).data  # .data copies the bytes out
        assert len(got) == len(data)
    return time.perf_counter() - started


def chunk_wire_round(data: bytes, count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        raw = chunk_wire.encode_chunk(chunk_wire.Chunk(index, data))
        got = chunk_wire.decode_chunk(raw).data
        assert len(got) == len(data)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    results = {}
    for size in SIZES:
        data = os.urandom(size)
        count = args.mib * 1024 * 1024 // size
        best = {"protobuf": float("inf"), "chunk_wire": float("inf")}
        for _ in range(args.repeat):
            best["protobuf"] = min(best["protobuf"], protobuf_round(data, count))
            best["chunk_wire"] = min(best["chunk_wire"], chunk_wire_round(data, count))
        mb = count * size / 1e6
        speed = {name: round(mb / seconds) for name, seconds in best.items()}
        results[f"{size // 1024}KiB"] = {
            "mb_s": speed,
            "chunk_wire_over_protobuf": round(speed["chunk_wire"] / speed["protobuf"], 2),
        }
    print(json.dumps({"mib": args.mib, "repeat": args.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    main()
