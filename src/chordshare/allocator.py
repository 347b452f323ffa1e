"""The C allocator under a process that moves large buffers between threads.

glibc gives each thread that contends for the heap an arena of its own (up to 8 per core)
and keeps what is freed in an arena for that arena's reuse. A transfer passes megabyte
chunks through gRPC's threads, the event loop and the worker threads that hash and write
them, so each arena ends up holding spare megabytes of its own: a get's peak memory is
higher with the default than with one arena, and it is no faster (bench/RESULTS.md,
Memory). Freed chunks also stay in the heap between transfers unless it is trimmed.

glibc also serves every allocation over 128 KiB with a fresh mmap and returns the heap's
top to the system once 128 KiB of it are free, adjusting both only after the first large
free. Each megabyte chunk would then be faulted in page by page and zeroed by the kernel,
then unmapped, a large share of a serving node's CPU. Chunks (at most 1 MiB, and a gRPC
message a few bytes more) come from the heap instead and their memory is reused.

Elsewhere (musl, macOS) there is nothing to set, and both calls do nothing. It stays while
it pays: gets with glibc's malloc as it comes ran at 0.84 - 0.91 of these settings in the
same runs, with a higher peak (`bench/transfer.py --get-variants product,plain_malloc`).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
from typing import Any

# mallopt's parameter numbers, from glibc's <malloc.h>, with the environment variable
# that sets each (the environment wins: whoever set it meant it) and our value.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
SETTINGS = (
    (M_ARENA_MAX, "MALLOC_ARENA_MAX", 1),
    # Allocations under 4 MiB come from the heap (chunks and their gRPC messages).
    (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 4 * 1024 * 1024),
    # Up to 16 MiB free at the heap's top stay for the next chunks (a node's HeapTrimmer
    # still gives them back after its transfers).
    (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 16 * 1024 * 1024),
)
TRIM_EVERY = 32 * 1024 * 1024  # bytes a node moves between two trims


@functools.cache
def _libc() -> Any | None:
    """The C library, loaded once. The process's own symbols include it (dlopen(NULL)),
    which spares ctypes.util.find_library: it runs ldconfig, 2-3 ms at every start-up and
    every trim."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def tune_malloc() -> dict[str, int]:
    """Set glibc's malloc for moving chunks (see the module docstring) and return the
    settings it took, by the names of their environment variables. Call it at start-up,
    before threads exist. A setting whose environment variable is set is left alone."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return {
        env: value
        for param, env, value in SETTINGS
        if env not in os.environ and mallopt(param, value) == 1
    }


def trim_free_memory() -> bool:
    """Give the heap's free pages back to the OS (glibc's malloc_trim); True if any went.
    Blocking: it walks the heap, a few milliseconds after a large transfer."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))


class HeapTrimmer:
    """Trims the heap (in a thread) each time `every` more bytes have gone through a
    node's transfers, so the chunks a put or a get freed do not stay counted against the
    node until its next transfer happens to reuse them."""

    def __init__(self, every: int = TRIM_EVERY) -> None:
        self.every = every
        self.trims = 0
        self._since = 0
        self._running: asyncio.Future[bool] | None = None

    def moved(self, nbytes: int) -> None:
        """Count bytes received or sent; call from the event loop."""
        self._since += nbytes
        if self._since < self.every or self._running is not None:
            return
        self._since = 0
        self.trims += 1
        self._running = asyncio.ensure_future(asyncio.to_thread(trim_free_memory))
        self._running.add_done_callback(self._done)

    def _done(self, _: asyncio.Future[bool]) -> None:
        self._running = None

    async def close(self) -> None:
        """Wait for a trim under way (a thread cannot be stopped)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
