"""A crowd of uploads through one node's REST API waits its turn: every upload is stored
(201), none is told the disk is full (507) while there is room, and an upload refused for
load says when to come back (503 with Retry-After)."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from apinet import ApiNetwork
from waiting import wait_until

from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_upload import UploadQueue

UPLOADS = 50


async def test_fifty_uploads_at_once_are_all_stored(net: ApiNetwork) -> None:
    ring = await net.ring(3)
    http = await net.api(ring[0])
    http.timeout = httpx.Timeout(90)
    bodies = {f"crowd-{i}.bin": os.urandom(1 << 20) for i in range(UPLOADS)}
    started = time.monotonic()
    async with http:
        answers = await asyncio.gather(
            *(http.post("/api/v1/files", files={"file": (n, b)}) for n, b in bodies.items())
        )
        took = time.monotonic() - started
        statuses = [a.status_code for a in answers]
        assert 507 not in statuses, [a.text for a in answers if a.status_code == 507][:1]
        assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
        assert statuses.count(201) >= 45 and set(statuses) <= {201, 503}, statuses
        assert took < 60
        stored = [n for n, a in zip(bodies, answers, strict=True) if a.status_code == 201]
        for name in stored[::10]:
            got = await http.get(f"/api/v1/files/{name}")
            assert got.status_code == 200 and got.content == bodies[name]


async def test_the_queue_runs_a_few_at_once_in_the_order_they_came() -> None:
    queue = UploadQueue(at_once=2, per_client=10, in_all=10)
    running: list[int] = []
    most = 0
    order: list[int] = []
    release = asyncio.Event()

    async def upload(i: int) -> None:
        nonlocal most
        async with queue.turn("client"):
            order.append(i)
            running.append(i)
            most = max(most, len(running))
            await release.wait()
            running.remove(i)

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(upload(i)))
        await asyncio.sleep(0)  # each asks in turn
    await wait_until(lambda: len(order) == 2, 5, "two uploads to start")
    assert order == [0, 1]
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert most == 2 and order == list(range(6))


async def test_a_client_past_its_share_of_the_queue_is_told_to_come_back() -> None:
    queue = UploadQueue(at_once=1, per_client=2, in_all=3)
    release = asyncio.Event()

    async def upload(client: str) -> None:
        async with queue.turn(client):
            await release.wait()

    held = [asyncio.create_task(upload("greedy")) for _ in range(3)]  # 1 running, 2 waiting
    await wait_until(lambda: queue._waiting.total() == 2, 5, "two uploads to wait")
    with pytest.raises(ApiError) as refused:
        await upload("greedy")
    assert refused.value.status == 503 and refused.value.code == "busy"
    other = asyncio.create_task(upload("polite"))  # another client still gets a place
    await wait_until(lambda: queue._waiting.total() == 3, 5, "three uploads to wait")
    with pytest.raises(ApiError):
        await upload("third")  # the queue is full for everyone now
    release.set()
    await asyncio.wait_for(asyncio.gather(*held, other), 5)


async def test_an_upload_that_waits_too_long_is_told_to_come_back() -> None:
    queue = UploadQueue(at_once=1, longest_wait=0.2)
    release = asyncio.Event()

    async def upload() -> None:
        async with queue.turn("a"):
            await release.wait()

    first = asyncio.create_task(upload())
    await asyncio.sleep(0)
    with pytest.raises(ApiError) as refused:
        await upload()
    assert refused.value.status == 503
    release.set()
    await first
    async with queue.turn("a"):  # the waiter that gave up holds no place
        pass
