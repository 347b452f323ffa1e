"""Starting `chordshare node` processes for the benchmarks: one place for the command, the
"serving at" line they print when ready, and the kernel's promise to kill them with us."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chordshare.chord.messages import NodeRef

# This process forks node processes while its gRPC channels are open: without this, gRPC's
# post-fork handler can abort a child before its exec (grpc/grpc#43055).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

CLI = (sys.executable, "-m", "chordshare.faces.cli")
READY = re.compile(r"node (\d+) serving at (\S+?),")


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(log_path: Path, args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start `chordshare node ARGS` writing its log to log_path."""
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [*CLI, "node", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=die_with_parent,
        )


def ready(popen: subprocess.Popen[bytes], log_path: Path) -> NodeRef | None:
    """The node once it printed its "serving at" line; None while it is still starting;
    RuntimeError with the end of its log if it exited."""
    found = READY.search(log_path.read_text(errors="replace"))
    if found:
        return NodeRef(int(found[1]), found[2])
    if popen.poll() is not None:
        raise RuntimeError(not_started(log_path))
    return None


def not_started(log_path: Path) -> str:
    return f"node did not start: {log_path.read_text()[-2000:]}"


def start_numbered(
    workdir: Path, index: int, args: Sequence[str], join: str | None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Node number `index` of a benchmark's ring: its own data directory and log under
    workdir, joined through `join` (None: it starts the ring). Returns it and its log."""
    extra = ["--data-dir", str(workdir / f"data-{index}")]
    if join:
        extra += ["--join", join]
    log_path = workdir / f"node-{index}.log"
    return spawn(log_path, [*args, *extra]), log_path


async def wait_ready(popen: subprocess.Popen[bytes], log_path: Path, deadline: float) -> NodeRef:
    """The node once it is serving; RuntimeError with the end of its log if it exited or
    is not serving by `deadline` (time.monotonic)."""
    while (found := ready(popen, log_path)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(not_started(log_path))
        await asyncio.sleep(0.05)
    return found
