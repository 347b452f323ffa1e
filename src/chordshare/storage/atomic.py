"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename in directory durable (the entry lives in the directory's own data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    path: Path, pieces: Iterable[bytes], tmp_dir: Path | None = None, durable: bool = True
) -> int:
    """Write pieces to path through a temporary file, fsync and rename. Returns the size.

    tmp_dir must be on the same file system as path (rename is atomic only there);
    by default it is path's own directory. durable=False skips both fsyncs: readers still
    see all or nothing, but a crash may lose the file; the caller syncs it later.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir or directory, prefix=".tmp-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                out.write(piece)
                size += len(piece)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_directory(directory)
    return size
