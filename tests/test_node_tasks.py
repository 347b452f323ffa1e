"""One TaskGroup owns a node's long-lived tasks: closing it ends them all, and a task that
fails with an error no loop caught stops the others and ends the node, which says so."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from waiting import wait_until

from chordshare.node.runtime import Timing
from chordshare.node.server import NodeServer, NodeSettings
from chordshare.node.tasks import NodeTasks

FAST = Timing(stabilize=0.1, check_predecessor=0.2, fix_fingers=0.3, join_deadline=2.0)


async def forever() -> None:
    await asyncio.Event().wait()


async def fails_soon() -> None:
    await asyncio.sleep(0.01)
    raise OSError("what no loop caught")


async def test_close_ends_every_task_and_the_group_opens_again() -> None:
    tasks = NodeTasks()
    await tasks.open()
    running = [tasks.start(forever(), f"loop {i}") for i in range(3)]
    await tasks.close()
    assert all(task.cancelled() for task in running)
    assert not tasks.running and tasks.failure is None
    await tasks.open()
    again = tasks.start(forever(), "again")
    await tasks.close()
    assert again.cancelled()


async def test_a_failed_task_stops_the_others_and_is_reported_once() -> None:
    tasks = NodeTasks()
    heard: list[BaseException] = []
    tasks.on_failure(heard.append)
    await tasks.open()
    loop = tasks.start(forever(), "loop")
    tasks.start(fails_soon(), "failing")
    await wait_until(lambda: bool(heard), 5, "the failure to be reported")
    assert loop.cancelled()
    assert len(heard) == 1 and tasks.failure is heard[0]
    assert isinstance(heard[0], ExceptionGroup)
    assert [str(e) for e in heard[0].exceptions] == ["what no loop caught"]
    with pytest.raises(RuntimeError, match="not running"):
        tasks.start(forever(), "late")
    await tasks.close()


async def test_a_task_refused_before_open_leaves_no_coroutine_behind() -> None:
    tasks = NodeTasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="'early'"):
            tasks.start(forever(), "early")
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_a_node_whose_task_fails_ends_and_stops_its_maintenance() -> None:
    server = NodeServer(NodeSettings(bind="127.0.0.1:0", timing=FAST))
    node = await server.start()
    try:
        assert node.tasks is server.tasks and server.tasks.running
        assert not server.ended.is_set()
        server.tasks.start(fails_soon(), "failing")
        await asyncio.wait_for(server.ended.wait(), 5)
        assert server.ending == "a node task failed"
        assert not server.tasks.running
        assert all(task.done() for task in node._tasks)
    finally:
        await server.stop(graceful=False)


async def test_an_admin_leave_ends_the_node() -> None:
    first = NodeServer(NodeSettings(bind="127.0.0.1:0", timing=FAST))
    await first.start()
    assert first.node is not None
    second = NodeServer(NodeSettings(bind="127.0.0.1:0", timing=FAST, join=first.node.me.address))
    await second.start()
    try:
        second.request_leave()
        await asyncio.wait_for(second.ended.wait(), 10)
        assert second.ending == "it left the ring"
        assert second.node is not None and not second.node.joined
        assert not first.ended.is_set()
    finally:
        await second.stop(graceful=False)
        await first.stop(graceful=False)
