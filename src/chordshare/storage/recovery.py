"""Starting again from a damaged catalog (`chordshare node --recover-data`).

The damaged catalog is moved aside, not deleted (someone may want to look into it), under
`catalog.sqlite3.damaged-<UTC time>`, with its log files renamed alike so that SQLite
still opens them together. A fresh catalog takes its place. The chunk files stay: each is
named by the SHA-256 of its bytes, so one that still hashes to its name is good whatever
the catalog said, and one that does not is deleted. The ring's repair then pushes back the
names this node should hold, and the chunks kept here need not travel again: a pushing
holder asks which chunks are missing first (MissingChunks) and sends only those.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chordshare.storage.atomic import fsync_directory
from chordshare.storage.catalog import CatalogDamaged
from chordshare.storage.chunks import ChunkError, ChunkStore

log = logging.getLogger(__name__)

# The files SQLite keeps beside a database; a fresh catalog must never meet the damaged
# one's: SQLite would replay an old write-ahead log or hot journal into it.
LOG_SUFFIXES = ("-wal", "-shm", "-journal")
DAMAGED = ".damaged-"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a recovering start did."""

    reason: str  # why the catalog was found damaged
    set_aside: Path  # where the damaged catalog is now
    kept: int  # chunk files that hash to their names
    removed: int  # chunk files that did not, deleted


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename the catalog at `path` and its log files to `<name>.damaged-<UTC time>`
    (and `-wal`, `-shm` beside it); return the catalog's new path."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}{DAMAGED}{stamp}")
    tries = 1
    while any(_beside(target, s).exists() for s in ("", *LOG_SUFFIXES)):
        target = path.with_name(f"{path.name}{DAMAGED}{stamp}-{tries}")
        tries += 1
    # The logs first: a crash half-way must not leave the catalog's name with them.
    for suffix in (*LOG_SUFFIXES, ""):
        if _beside(path, suffix).exists():
            os.rename(_beside(path, suffix), _beside(target, suffix))
    fsync_directory(path.parent)
    return target


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def check_chunks(chunks: ChunkStore) -> tuple[int, int]:
    """Read every chunk file again; keep those that hash to their names, delete the
    others. Returns how many were kept and how many deleted."""
    kept = removed = 0
    for digest in chunks.digests():
        try:
            chunks.get(digest, verify=True)
        except ChunkError:
            chunks.remove(digest)
            removed += 1
        else:
            kept += 1
    return kept, removed


def recover(damaged: CatalogDamaged, chunks: ChunkStore, now: datetime | None = None) -> Recovery:
    """Set the damaged catalog aside and check the chunk files; the caller then opens a
    fresh catalog at the same path."""
    moved = set_aside(damaged.path, now)
    log.warning("%s: set aside as %s; starting with a fresh catalog", damaged, moved.name)
    kept, removed = check_chunks(chunks)
    log.info(
        "kept %d chunk files that hash right, deleted %d that did not; the ring's repair "
        "brings this node's files back",
        kept,
        removed,
    )
    return Recovery(damaged.reason, moved, kept, removed)
