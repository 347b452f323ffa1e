"""A slower disk on demand: cap the write rate of this process and its future children.

The shared disk under the benchmarks swings between a few hundred MB/s and 2 GB/s from one
minute to the next, so whether a transfer keeps up with a slow disk cannot be waited for.
`write_cap` puts this process in a block-I/O cgroup whose writes to the disk holding a
directory are capped (cgroup v1 `blkio.throttle.write_bps_device`, or v2 `io.max`), and
every process it starts afterwards inherits the cap: the nodes, the reference servers.

What the cap covers: writes a process submits itself, which includes everything an fsync
or fdatasync flushes. The kernel's own background writeback is not charged to the group
(cgroup v1), but it only starts after 30 s or gigabytes of dirty pages, and every
benchmark here syncs what it writes. Needs root; only this process tree is affected, and
the group is removed on exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/blkio")
V2_ROOT = Path("/sys/fs/cgroup")


class CapUnavailable(RuntimeError):
    """No block-I/O cgroup controller can be used here (not root, or not mounted)."""


def disk_of(directory: Path) -> str:
    """'major:minor' of the whole disk holding directory (a partition's parent)."""
    dev = os.stat(directory).st_dev
    number = f"{os.major(dev)}:{os.minor(dev)}"
    sysfs = Path("/sys/dev/block") / number
    if (sysfs / "partition").exists():
        return (sysfs.resolve().parent / "dev").read_text().strip()
    return number


def _v2_usable() -> bool:
    controllers = V2_ROOT / "cgroup.controllers"
    return controllers.exists() and "io" in controllers.read_text().split()


@contextlib.contextmanager
def write_cap(directory: Path, mb_s: float) -> Iterator[str]:
    """Cap writes to directory's disk at mb_s (10^6 bytes/s) for this process and the
    processes it starts inside the block; yields a description of the cap."""
    disk = disk_of(directory)
    rate = int(mb_s * 1e6)
    name = f"chordshare-bench-{os.getpid()}"
    if (V1_ROOT / "blkio.throttle.write_bps_device").exists():
        group, parent = V1_ROOT / name, V1_ROOT
        limit, setting = group / "blkio.throttle.write_bps_device", f"{disk} {rate}"
    elif _v2_usable():
        group, parent = V2_ROOT / name, V2_ROOT
        with contextlib.suppress(OSError):  # the io controller may already be on
            (V2_ROOT / "cgroup.subtree_control").write_text("+io")
        limit, setting = group / "io.max", f"{disk} wbps={rate}"
    else:
        raise CapUnavailable("no blkio (cgroup v1) or io (cgroup v2) controller mounted")
    try:
        group.mkdir()
    except PermissionError as err:
        raise CapUnavailable(f"cannot create {group}: {err} (run as root)") from err
    try:
        limit.write_text(setting)
        (group / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield f"writes to disk {disk} capped at {mb_s:g} MB/s ({limit.name})"
        finally:
            (parent / "cgroup.procs").write_text(str(os.getpid()))
    finally:
        # Its other members (the nodes) are gone by now; a straggler keeps it a moment.
        with contextlib.suppress(OSError):
            group.rmdir()
