"""The C allocator under a process that moves large buffers between threads.

glibc gives each thread that contends for the heap an arena of its own (up to 8 per core)
and keeps what is freed in an arena for that arena's reuse. A transfer passes megabyte
chunks through gRPC's threads, the event loop and the worker threads that hash and write
them, so each arena ends up holding spare megabytes of its own: a 1 GiB get peaked 15-25 MB
higher with the default than with one arena, and was no faster (README, Memory). Freed
chunks also stay in the heap between transfers unless it is trimmed.

Elsewhere (musl, macOS) there is nothing to set, and both calls do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's <malloc.h>
ARENAS = 1
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


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; True if the allocator took the setting.
    Call it at start-up, before threads exist. The environment's MALLOC_ARENA_MAX, when
    set, is left to win: whoever set it meant it."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


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
