"""Cutting a local file into hashed chunks and building its manifest.

Reads in one pass with flat memory (one chunk at a time); meant to run in a thread, since
hashing a large file would otherwise block the event loop.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from chordshare.files.manifest import Manifest

DEFAULT_CHUNK_SIZE = 1024 * 1024
MIN_CHUNK_SIZE = 256 * 1024
CHUNKS_WANTED = 256  # enough chunks for several holders to share a file evenly


def chunk_size_for(size: int) -> int:
    """The chunk size for a file of `size` bytes: 1 MiB (the fastest gRPC message size in
    bench/RESULTS.md), but smaller for files under 256 MiB, down to 256 KiB, so a file still has
    about 256 chunks to spread over its holders (64 chunks split over 3 holders can be no
    better than 22/21/21). BitTorrent picks piece sizes by file size the same way."""
    wanted = max(MIN_CHUNK_SIZE, -(-size // CHUNKS_WANTED))
    power = 1 << (wanted - 1).bit_length()  # a power of two, as piece sizes usually are
    return min(DEFAULT_CHUNK_SIZE, power)


def iter_chunks(path: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(chunk_size):
            yield piece


def file_sha256(path: str | Path) -> bytes:
    """The SHA-256 of a local file's bytes, read in pieces."""
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").digest()


def manifest_of(data: bytes, name: str, chunk_size: int, created: float | None = None) -> Manifest:
    """The manifest of bytes in memory (of one chunk, its hash is the file's: hashed once)."""
    chunks = tuple(
        hashlib.sha256(data[start : start + chunk_size]).digest()
        for start in range(0, len(data), chunk_size)
    )
    whole = chunks[0] if len(chunks) == 1 else hashlib.sha256(data).digest()
    return Manifest(
        name=name,
        size=len(data),
        sha256=whole,
        chunk_size=chunk_size,
        chunks=chunks,
        created=time.time() if created is None else created,
    )


def chunk_manifest(
    path: Path, name: str, chunk_size: int = DEFAULT_CHUNK_SIZE, created: float | None = None
) -> Manifest:
    """The manifest a client puts: the hash of every chunk, each byte hashed once. The whole
    file's SHA-256 is left for the owner, which computes it as the chunks arrive (of a
    one-chunk file it is the chunk's)."""
    digests = []
    size = 0
    for piece in iter_chunks(path, chunk_size):
        digests.append(hashlib.sha256(piece).digest())
        size += len(piece)
    return Manifest(
        name=name,
        size=size,
        sha256=digests[0] if len(digests) == 1 else b"",
        chunk_size=chunk_size,
        chunks=tuple(digests),
        created=time.time() if created is None else created,
    )


@dataclass(slots=True)
class LocalFile:
    path: Path
    name: str
    size: int
    chunk_size: int
    # None until the file has been hashed: a large put hashes it as it sends it.
    manifest: Manifest | None
    data: bytes | None  # the whole file, when it was small enough to keep
    # The SHA-256 of a large file's first chunk: a new name whose first chunk the owner
    # already has is likely content it holds under another name (see Putter._put_to).
    first_chunk: bytes | None = None

    def promise(self, created: float | None = None) -> Manifest:
        """The manifest without its hashes, for a put that sends them last."""
        return Manifest(
            self.name,
            self.size,
            b"",
            self.chunk_size,
            (),
            time.time() if created is None else created,
        )


def read_for_put(path: Path, name: str, chunk_size: int | None, keep_up_to: int) -> LocalFile:
    """A local file about to be put (chunk size chosen by its size unless given). One of at
    most `keep_up_to` bytes is read and hashed now and kept: a small put sends the very
    bytes it hashed, from memory. A larger one is left to be hashed as it is sent; only its
    first chunk is hashed now. One call for a thread: each hop to a thread costs a small
    put a tenth of a millisecond."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(f"{path}: no such file")
    if chunk_size is None:
        chunk_size = chunk_size_for(info.st_size)
    if info.st_size <= keep_up_to:
        data = path.read_bytes()
        manifest = manifest_of(data, name, chunk_size)
        return LocalFile(path, name, len(data), chunk_size, manifest, data)
    with path.open("rb") as file:
        first = hashlib.sha256(file.read(chunk_size)).digest()
    return LocalFile(path, name, info.st_size, chunk_size, None, None, first)


class ManifestHasher:
    """The chunk hashes of a file read chunk by chunk, for a manifest sent after the chunks.
    `read_chunk` (in any thread) hashes each chunk as it reads it; the whole file's SHA-256
    is the owner's to compute. `known`: hashes computed already (the first chunk's, hashed
    to ask the owner whether it has it), not computed again."""

    def __init__(self, promise: Manifest, known: Mapping[int, bytes] | None = None) -> None:
        self.promise = promise
        self._chunks: dict[int, bytes] = dict(known or {})

    def read_chunk(self, fd: int, index: int) -> bytes:
        data = os.pread(fd, self.promise.chunk_length(index), index * self.promise.chunk_size)
        if index not in self._chunks:
            self._chunks[index] = hashlib.sha256(data).digest()
        return data

    def add(self, index: int, digest: bytes) -> None:
        """A chunk hashed elsewhere (a stream's chunks are hashed as they arrive)."""
        self._chunks[index] = digest

    def so_far(self) -> Manifest:
        """The chunks hashed so far, in order: a manifest that closes a put cut short."""
        chunks = tuple(self._chunks[i] for i in sorted(self._chunks))
        return replace(self.promise, sha256=b"", chunks=chunks)

    def manifest(self) -> Manifest:
        count = self.promise.chunk_count
        if len(self._chunks) != count:
            raise ValueError(f"{len(self._chunks)} of {count} chunks hashed: not ready")
        chunks = tuple(self._chunks[i] for i in range(count))
        return replace(self.promise, sha256=b"", chunks=chunks)


def build_manifest(
    path: Path, name: str, chunk_size: int = DEFAULT_CHUNK_SIZE, created: float | None = None
) -> Manifest:
    """The manifest of a local file: its size, SHA-256 and the SHA-256 of every chunk.

    The whole-file hash and the chunk hashes are computed in two threads, each reading the
    file (the second read comes from the page cache): hashlib releases the GIL, so on two
    cores this takes half the time of one pass doing both."""
    if path.stat().st_size <= chunk_size:
        # One chunk (or none): read it once.
        return manifest_of(path.read_bytes(), name, chunk_size, created)
    with ThreadPoolExecutor(max_workers=1) as pool:
        whole_future = pool.submit(file_sha256, path)
        digests = []
        size = 0
        for piece in iter_chunks(path, chunk_size):
            digests.append(hashlib.sha256(piece).digest())
            size += len(piece)
        whole = whole_future.result()
    return Manifest(
        name=name,
        size=size,
        sha256=whole,
        chunk_size=chunk_size,
        chunks=tuple(digests),
        created=time.time() if created is None else created,
    )
