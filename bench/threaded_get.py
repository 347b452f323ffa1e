"""A get with its data path in plain threads: what asyncio costs chordshare's get.

`FileClient.get` receives chunks on the event loop (grpc.aio) and hops to a thread to
verify and write each one, and again for the whole-file hash. This reference does the same
work with none of that: `lanes` threads each stream a batch of chunks from the node with
gRPC's blocking API, check each chunk's SHA-256 and write it at its offset around the page
cache (`storage.direct`), and a third thread feeds them, in order, to the whole-file
SHA-256, which must match; then the file is fsynced. One holder, no endgame, no resume, no
timeouts: a floor for the per-chunk work, not a replacement for `download.py`.

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

from chordshare.sharing import chunk_wire
from chordshare.storage.catalog import Manifest
from chordshare.storage.direct import DirectFile
from chordshare.v1 import files_pb2 as pb

FETCH = f"/{pb.DESCRIPTOR.services_by_name['Files'].full_name}/FetchChunks"


def _batches(count: int, size: int) -> queue.SimpleQueue[Sequence[int]]:
    batches: queue.SimpleQueue[Sequence[int]] = queue.SimpleQueue()
    for start in range(0, count, size):
        batches.put(range(start, min(count, start + size)))
    return batches


def threaded_get(
    address: str, manifest: Manifest, out: Path, lanes: int = 2, batch: int = 8
) -> None:
    """Download manifest's file from the node at address into out (see the docstring);
    RuntimeError if a chunk or the whole file does not match its hash."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 8 << 20)])
    fetch = channel.unary_stream(
        FETCH,
        request_serializer=pb.FetchRequest.SerializeToString,
        response_deserializer=chunk_wire.decode_chunk,
    )
    file = DirectFile(out)
    os.ftruncate(file.fd, manifest.size)
    batches = _batches(len(manifest.chunks), batch)
    in_order: queue.SimpleQueue[bytes | memoryview | None] = queue.SimpleQueue()
    landed: dict[int, bytes | memoryview] = {}
    lock = threading.Lock()
    next_index = 0
    whole = hashlib.sha256()
    errors: list[BaseException] = []

    def hash_whole() -> None:
        while (data := in_order.get()) is not None:
            whole.update(data)

    def lane() -> None:
        nonlocal next_index
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
                    file.write(data, index * manifest.chunk_size)
                    with lock:
                        landed[index] = data
                        while next_index in landed:
                            in_order.put(landed.pop(next_index))
                            next_index += 1
        except BaseException as err:
            errors.append(err)

    hasher = threading.Thread(target=hash_whole)
    hasher.start()
    workers = [threading.Thread(target=lane) for _ in range(lanes)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        in_order.put(None)
        hasher.join()
        os.fsync(file.fd)
        file.close()
        channel.close()
    if errors:
        raise RuntimeError(f"threaded get failed: {errors[0]}") from errors[0]
    if whole.digest() != manifest.sha256:
        raise RuntimeError("the chunks do not add up to the file's SHA-256")
