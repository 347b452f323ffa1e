"""Cutting a local file into hashed chunks and building its manifest.

Reads in one pass with flat memory (one chunk at a time); meant to run in a thread, since
hashing a large file would otherwise block the event loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from chordshare.storage.catalog import Manifest

DEFAULT_CHUNK_SIZE = 1024 * 1024


def iter_chunks(path: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(chunk_size):
            yield piece


def build_manifest(
    path: Path, name: str, chunk_size: int = DEFAULT_CHUNK_SIZE, created: float | None = None
) -> Manifest:
    """The manifest of a local file: its size, SHA-256 and the SHA-256 of every chunk."""
    whole = hashlib.sha256()
    digests = []
    size = 0
    for piece in iter_chunks(path, chunk_size):
        whole.update(piece)
        digests.append(hashlib.sha256(piece).digest())
        size += len(piece)
    return Manifest(
        name=name,
        size=size,
        sha256=whole.digest(),
        chunk_size=chunk_size,
        chunks=tuple(digests),
        created=time.time() if created is None else created,
    )
