"""Waiting on a condition with a deadline, for async tests (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool], deadline: float, what: str, interval: float = 0.02
) -> None:
    """Poll condition until it holds; fail naming `what` once `deadline` seconds pass."""
    give_up = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_answer(
    condition: Callable[[], Awaitable[bool]], deadline: float, what: str, interval: float = 0.05
) -> None:
    """wait_until for a condition that has to ask over the network."""
    give_up = time.monotonic() + deadline
    while not await condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        await asyncio.sleep(interval)
