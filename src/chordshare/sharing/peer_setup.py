"""What a peer needs before it starts: its settings, and its data directory, locked for
it alone."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from chordshare.files.links import LINK_GRACE
from chordshare.files.placement import DEFAULT_REPLICAS
from chordshare.files.unfinished import DEFAULT_TTL as UNFINISHED_TTL
from chordshare.sharing.download_cache import DEFAULT_CACHE_BYTES
from chordshare.sharing.scrub import DEFAULT_RATE, FIRST_PASS_AFTER

IDENTITY_FILE = "publisher.pem"


class DataDirInUse(Exception):
    """Another running node already uses this data directory."""


@dataclass(frozen=True, slots=True)
class SharingSettings:
    data_dir: Path
    max_store: int | None = None
    share: Path | None = None
    replicas: int = DEFAULT_REPLICAS
    repair_period: float = 10.0
    republish: float = 30.0
    scrub_rate: float = DEFAULT_RATE  # bytes per second the scrubber reads; 0: no scrubbing
    scrub_first_after: float = FIRST_PASS_AFTER
    recover_data: bool = False  # a damaged catalog is set aside instead of stopping the start
    admin_keys: frozenset[bytes] = frozenset()  # may replace or remove any file
    cache_bytes: int = DEFAULT_CACHE_BYTES  # the most the download cache keeps; 0: nothing
    share_replicate: bool = False  # the shared folder's files are put into the ring too
    unfinished_put_ttl: float = UNFINISHED_TTL  # seconds a cut-off put's chunks are kept
    link_grace: float = LINK_GRACE  # seconds a replaced or removed version is kept, for links
    # Bytes per second (0: no limit): sent and received for users' transfers, and moved by
    # repair and scrubbing, both ways together.
    max_upload_rate: float = 0
    max_download_rate: float = 0
    max_repair_rate: float = 0


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on the directory for the life of the process: two nodes
    writing one catalog would corrupt each other's view of it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(f"--data-dir {data_dir} is in use by another running node") from None
    return fd


def first_missing(path: Path) -> Path | None:
    """The outermost of path and its parents that does not exist yet, if any."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing
