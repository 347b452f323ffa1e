"""The event loop a face runs its calls on: uvloop where it exists, since grpc.aio calls cost
half as much there, and asyncio's own elsewhere; and waiting for the first of several
things."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a loop of its own (one CLI command)."""
    try:
        import uvloop
    except ImportError:  # not built for this platform
        return asyncio.run(coro)
    return uvloop.run(coro)


def new_loop() -> asyncio.AbstractEventLoop:
    """A loop that lives as long as its owner (the console), for many calls."""
    try:
        import uvloop
    except ImportError:  # not built for this platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def first_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until one of `waits` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
