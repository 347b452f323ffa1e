"""The C allocator setting every chordshare process makes at start-up."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys
from collections.abc import Iterator

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


@pytest.mark.skipif(not GLIBC, reason="the arena cap is a glibc setting")
def test_glibc_takes_the_arena_cap() -> None:
    # In a child: the setting is for a whole process, and this one is the test runner.
    code = "from chordshare.allocator import limit_malloc_arenas as f; print(f())"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_an_arena_cap_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: pytest.fail("libc was called"))
    assert allocator.limit_malloc_arenas() is False


def test_without_mallopt_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)

    def no_libc(*_: object) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator.limit_malloc_arenas() is False
    allocator._libc.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: object())  # a libc without mallopt
    assert allocator.limit_malloc_arenas() is False


def test_the_cli_caps_arenas_before_it_runs_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(cli, "limit_malloc_arenas", lambda: order.append("cap") or True)
    monkeypatch.setattr(cli, "app", lambda: order.append("app"))
    cli.main()
    assert order == ["cap", "app"]


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc call")
def test_a_trim_runs_on_glibc() -> None:
    freed = bytearray(8 << 20)  # something to give back
    del freed
    allocator.trim_free_memory()  # True or False (nothing to give back); it must not raise


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
