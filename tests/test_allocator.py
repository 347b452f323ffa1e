"""The C allocator settings every chordshare process makes at start-up, and heap trims."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chordshare import allocator
from chordshare.faces import cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture(autouse=True)
def fresh_libc() -> Iterator[None]:
    """The C library is loaded once per process: load it afresh around each test, so a
    test's stand-in for it is the one used, and does not outlive the test."""
    allocator._libc.cache_clear()
    yield
    allocator._libc.cache_clear()


def _child(code: str) -> str:
    """Run code in a fresh interpreter (malloc settings are per process, and this one is
    the test runner) with no MALLOC_* variables; its stdout."""
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="these are glibc settings")
def test_glibc_takes_every_setting() -> None:
    taken = _child("from chordshare.allocator import tune_malloc; print(tune_malloc())")
    assert taken == str({env: value for _, env, value in allocator.SETTINGS})


REUSE = """
import resource, sys
from chordshare.allocator import tune_malloc
if sys.argv[-1] == "tuned":
    tune_malloc()
MIB = 1 << 20
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):  # three chunks held at once, then freed, as a transfer does
    held = [b"x" * MIB for _ in range(3)]
    del held
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 150)
"""


@pytest.mark.skipif(not GLIBC, reason="these are glibc settings")
def test_chunks_reuse_the_heap_instead_of_fresh_pages() -> None:
    # A page is 4 KiB: a megabyte from fresh memory costs 256 faults (plus zeroing).
    tuned = float(_child(REUSE.replace("sys.argv[-1]", "'tuned'")))
    plain = float(_child(REUSE))
    assert tuned < 16, f"{tuned} page faults per MiB allocated"
    assert plain > 4 * tuned  # what the settings save (glibc's defaults trim and refault)


class FakeMallopt:
    """Stands in for a ctypes function: records calls, takes argtypes and restype."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


class FakeLibc:
    def __init__(self) -> None:
        self.mallopt = FakeMallopt()


def test_a_setting_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, env, _ in allocator.SETTINGS:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    libc = FakeLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: libc)
    taken = allocator.tune_malloc()
    assert "MALLOC_ARENA_MAX" not in taken
    assert set(taken) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    assert allocator.M_ARENA_MAX not in [param for param, _ in libc.mallopt.calls]


def test_without_mallopt_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*_: object) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator.tune_malloc() == {}
    allocator._libc.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: object())  # a libc without mallopt
    assert allocator.tune_malloc() == {}


def test_the_cli_tunes_malloc_before_it_runs_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(cli, "tune_malloc", lambda: order.append("tune") or {})
    monkeypatch.setattr(cli, "app", lambda: order.append("app"))
    cli.main()
    assert order == ["tune", "app"]


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc call")
def test_a_trim_gives_freed_heap_pages_back_on_glibc() -> None:
    def resident() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    allocator.trim_free_memory()
    # Blocks under malloc's mmap threshold come from the heap; with one still in use above
    # them, free() cannot shrink the heap and their pages stay resident until a trim.
    blocks = [bytes(4000) for _ in range(10_000)]
    above = bytes(4000)
    del blocks
    before = resident()
    assert allocator.trim_free_memory() is True
    assert before - resident() > 20 << 20  # most of the 40 MB went back
    del above


async def test_the_heap_is_trimmed_after_every_so_many_bytes_one_trim_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    release = threading.Event()
    trims: list[int] = []

    def slow_trim() -> bool:
        trims.append(1)
        release.wait(5)
        return True

    monkeypatch.setattr(allocator, "trim_free_memory", slow_trim)
    trimmer = allocator.HeapTrimmer(every=100)
    trimmer.moved(60)
    assert trimmer.trims == 0
    trimmer.moved(60)  # 120 >= 100: a trim starts
    assert trimmer.trims == 1
    trimmer.moved(500)  # one is still running: not a second at once
    assert trimmer.trims == 1
    release.set()
    await trimmer.close()
    assert trims == [1]
    trimmer.moved(1)  # the 500 moved meanwhile count: the next trim starts at once
    assert trimmer.trims == 2
    await trimmer.close()
    trimmer.moved(99)
    assert trimmer.trims == 2  # counting restarted at that trim
    trimmer.moved(1)
    assert trimmer.trims == 3
    await trimmer.close()
    assert trims == [1, 1, 1]
