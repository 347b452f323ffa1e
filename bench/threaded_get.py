"""A get with its data path in plain threads: what asyncio costs chordshare's get.

`FileClient.get` receives chunks on the event loop (grpc.aio) and hops to a thread to
verify and write each one. This reference does the same work with none of that: `lanes`
threads each stream a batch of chunks from the node with gRPC's blocking API, check each
chunk's SHA-256 against the manifest and write it at its offset; then the file is fsynced.
One holder, no endgame, no resume, no timeouts: a floor for the per-chunk work, not a
replacement for `download.py`.

`transfer.py` runs it right after each get, on the same file from the same node.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc

from chordshare.files.manifest import Manifest
from chordshare.transport import chunk_wire
from chordshare.v1 import files_pb2 as pb

FETCH = f"/{pb.DESCRIPTOR.services_by_name['Files'].full_name}/FetchChunks"


def _batches(count: int, size: int) -> queue.SimpleQueue[Sequence[int]]:
    batches: queue.SimpleQueue[Sequence[int]] = queue.SimpleQueue()
    for start in range(0, count, size):
        batches.put(range(start, min(count, start + size)))
    return batches


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def threaded_get(
    address: str, manifest: Manifest, out: Path, lanes: int = 2, batch: int = 8
) -> None:
    """Download manifest's file from the node at address into out (see the docstring);
    RuntimeError if a chunk does not match its hash."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 8 << 20)])
    fetch = channel.unary_stream(
        FETCH,
        request_serializer=pb.FetchRequest.SerializeToString,
        response_deserializer=chunk_wire.decode_chunk,
    )
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, manifest.size)
    batches = _batches(len(manifest.chunks), batch)
    errors: list[BaseException] = []

    def lane() -> None:
        try:
            while True:
                try:
                    indexes = batches.get_nowait()
                except queue.Empty:
                    return
                request = pb.FetchRequest(sha256=manifest.sha256, indexes=list(indexes))
                for index, data in fetch(request, timeout=60):
                    if hashlib.sha256(data).digest() != manifest.chunks[index]:
                        raise RuntimeError(f"chunk {index} failed its SHA-256 check")
                    _pwrite_all(fd, data, index * manifest.chunk_size)
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=lane) for _ in range(lanes)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        os.fsync(fd)
        os.close(fd)
        channel.close()
    if errors:
        raise RuntimeError(f"threaded get failed: {errors[0]}") from errors[0]
