"""The long-lived tasks of one node, owned by one asyncio.TaskGroup.

The ring's maintenance loops, the sharing loop, the scrubber and the copies a put leaves
running all start here, so a node stops them in one place and none outlives it. A task
that ends with an error no loop caught is a bug: the group cancels the others, logs the
error once and tells `ended` waiters, and the node stops, instead of serving on with its
maintenance silently gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class NodeTasks:
    def __init__(self) -> None:
        self._group: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None  # what ended the group, when a task failed
        self._on_failure: list[Callable[[BaseException], None]] = []

    @property
    def running(self) -> bool:
        return self._group is not None

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Call back once when a task failed and the group stopped them all."""
        self._on_failure.append(callback)

    async def open(self) -> None:
        """Start the group (again, after `close`); a no-op while it runs."""
        if self._runner is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failure = None
        self._runner = asyncio.create_task(self._hold(ready), name="node tasks")
        await ready

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                ready.set_result(None)
                await asyncio.Event().wait()  # until `close` cancels this task
        except Exception as err:  # an ExceptionGroup of what the failed tasks raised
            self.failure = err
            log.error("a node task failed; the node stops", exc_info=err)
            for callback in self._on_failure:
                callback(err)
        finally:
            self._group = None

    def start(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` as one of the node's tasks (RuntimeError once the node stopped)."""
        if self._group is None:
            coro.close()
            raise RuntimeError(f"cannot start {name!r}: the node's tasks are not running")
        return self._group.create_task(coro, name=name)

    async def close(self) -> None:
        """Cancel every task still running and wait for all of them to end."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def drop(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel tasks whose outcome is no longer wanted; the failure of one that finished is
    taken as seen (asyncio would log it as never retrieved)."""
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
        task.cancel()
