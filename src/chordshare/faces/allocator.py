"""Process-wide settings of the C allocator, made once at start-up before threads exist.

glibc gives each thread that contends for the heap an arena of its own (up to 8 per core)
and keeps what is freed in an arena for reuse by that arena. A transfer moves megabyte
chunks through gRPC's threads, the event loop and the worker threads that hash and write
them, so each arena ends up holding its own spare megabytes: a 1 GiB get peaked 15-25 MB
higher with the default than with one arena, and was no slower (see README, Memory).
Elsewhere (musl, macOS) there is nothing to set and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # mallopt parameter number, from glibc's <malloc.h>
ARENAS = 1


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; True if the allocator took the setting.

    The environment's MALLOC_ARENA_MAX, when set, is left to win: whoever set it meant it.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
