"""The REST API's limits on slow and many clients, against a real uvicorn server on loopback
with raw streams as clients, on asyncio's loop and on uvloop (what a node runs): a request
head must come whole within its deadline, whether on a new connection or on a kept-alive
one; a request whose head came may take as long as its answer takes; at the cap the next
connection waits in the listen backlog, unserved, until one closes, and is served then."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from apinet import ApiNetwork
from waiting import wait_until

from chordshare.faces import api_limits, loops
from chordshare.faces.api import EmbeddedServer, bind_api
from chordshare.faces.api_limits import ApiLimits, connections_for, descriptor_limit

Run = Callable[[Coroutine[Any, Any, None]], None]
LOOPS = [pytest.param(asyncio.run, id="asyncio"), pytest.param(loops.run, id="uvloop")]
HEAD = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PART = b"GET /hello HTTP/1.1\r\nHost: 127."  # a head that never ends
SHORT = 0.5  # the head timeout of these tests, seconds


class App:
    """A tiny ASGI app: 200 "hello", once `go` is set (set from the start by default)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.go.set()
        self.asked = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.asked += 1
        await self.go.wait()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def serving(limits: ApiLimits, app: App) -> AsyncIterator[tuple[EmbeddedServer, int]]:
    """The app served within `limits` on a loopback port, and that port."""
    sock = bind_api("127.0.0.1:0")
    port = sock.getsockname()[1]
    server = EmbeddedServer(limits.config(app, log_level="warning", lifespan="off"), limits)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done(), 5, "the server to start")
        assert not task.done(), task.result()
        yield server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Client:
    """One raw connection; closed by `clients` at the end of a test, whatever happened."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def answer(self, deadline: float) -> bytes:
        """The next answer's status line and headers (the body is 5 bytes)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), deadline)
        await asyncio.wait_for(self.reader.readexactly(5), deadline)
        return head

    async def dripped_until_closed(self, deadline: float) -> float:
        """Seconds until the server closes this connection, sending one more byte of an
        unending header line every 0.1 s meanwhile (as a slow client does)."""
        started = time.monotonic()
        self.writer.write(PART)
        closed = asyncio.ensure_future(self.reader.read(1))
        try:
            while not closed.done():
                if time.monotonic() - started > deadline:
                    raise AssertionError(f"still open after {deadline} s")
                with contextlib.suppress(ConnectionError):
                    self.writer.write(b"0")
                await asyncio.wait({closed}, timeout=0.1)
        finally:
            closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            assert await closed == b"", "the server answered a head it never got"
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def clients(port: int) -> AsyncIterator[Callable[[], Coroutine[Any, Any, Client]]]:
    opened: list[Client] = []

    async def connect() -> Client:
        client = Client(*await asyncio.open_connection("127.0.0.1", port))
        opened.append(client)
        return client

    try:
        yield connect
    finally:
        for client in opened:
            client.writer.close()
            with contextlib.suppress(ConnectionError):
                await client.writer.wait_closed()


@pytest.mark.parametrize("run", LOOPS)
def test_a_connection_that_sends_part_of_a_head_is_closed_at_the_deadline(run: Run) -> None:
    async def go() -> None:
        limits = ApiLimits(connections=8, head_timeout=SHORT, keep_alive=60)
        async with serving(limits, App()) as (server, port), clients(port) as connect:
            slow = await connect()
            took = await slow.dripped_until_closed(deadline=5)
            assert SHORT * 0.8 <= took < SHORT + 2, took
            await wait_until(lambda: server.room.open == 0, 5, "the count to drop")

    run(go())


@pytest.mark.parametrize("run", LOOPS)
def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline(run: Run) -> None:
    async def go() -> None:
        # uvicorn's keep-alive timer restarts on every byte: a long one shows it is not
        # what closes the connection.
        limits = ApiLimits(connections=8, head_timeout=SHORT, keep_alive=60)
        async with serving(limits, App()) as (_, port), clients(port) as connect:
            kept = await connect()
            kept.writer.write(HEAD)
            assert (await kept.answer(5)).startswith(b"HTTP/1.1 200 ")
            took = await kept.dripped_until_closed(deadline=5)
            assert SHORT * 0.8 <= took < SHORT + 2, took

    run(go())


@pytest.mark.parametrize("run", LOOPS)
def test_a_request_whose_head_came_may_wait_for_its_answer_past_the_deadline(
    run: Run,
) -> None:
    async def go() -> None:
        app = App()
        app.go.clear()
        limits = ApiLimits(connections=8, head_timeout=SHORT, keep_alive=60)
        async with serving(limits, app) as (_, port), clients(port) as connect:
            waiting = await connect()
            waiting.writer.write(HEAD)
            await wait_until(lambda: app.asked == 1, 5, "the request to reach the app")
            with pytest.raises(TimeoutError):  # three deadlines pass without an answer
                await waiting.answer(3 * SHORT)
            app.go.set()
            assert (await waiting.answer(5)).startswith(b"HTTP/1.1 200 ")

    run(go())


@pytest.mark.parametrize("run", LOOPS)
def test_at_the_cap_the_next_connection_is_served_only_once_one_closes(run: Run) -> None:
    async def go() -> None:
        app = App()
        limits = ApiLimits(connections=2, head_timeout=60, keep_alive=60)
        async with serving(limits, app) as (server, port), clients(port) as connect:
            first, second = await connect(), await connect()
            await wait_until(lambda: server.room.open == 2, 5, "two open connections")
            # The kernel completes the third handshake (the listen backlog); we never accept.
            third = await connect()
            third.writer.write(HEAD)
            with pytest.raises(TimeoutError):
                await third.answer(1.0)
            assert server.room.open == 2 and app.asked == 0
            # A connection accepted at the cap is served, not answered 503 by uvicorn.
            second.writer.write(HEAD)
            assert (await second.answer(5)).startswith(b"HTTP/1.1 200 ")
            first.writer.close()
            assert (await third.answer(5)).startswith(b"HTTP/1.1 200 ")
            assert server.room.open == 2

    run(go())


def test_a_head_over_its_size_is_refused_before_it_ends() -> None:
    async def go() -> None:
        limits = ApiLimits(connections=8, head_timeout=5, max_head=1024)
        async with serving(limits, App()) as (_, port), clients(port) as connect:
            big = await connect()
            big.writer.write(PART + b"a" * 2048)  # no end of head in sight
            refused = await asyncio.wait_for(big.reader.read(), 5)  # answered, then closed
            assert refused.startswith(b"HTTP/1.1 400 "), refused

    asyncio.run(go())


def test_a_shortage_of_descriptors_pauses_accepting_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api_limits, "RETRY", 0.05)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        accept = loop.sock_accept
        failures = [OSError(errno.EMFILE, "Too many open files")] * 3

        async def short_then_fine(sock: socket.socket) -> tuple[socket.socket, Any]:
            if failures:
                raise failures.pop()
            return await accept(sock)

        monkeypatch.setattr(loop, "sock_accept", short_then_fine)
        limits = ApiLimits(connections=8, head_timeout=5)
        async with serving(limits, App()) as (_, port), clients(port) as connect:
            served = await connect()
            served.writer.write(HEAD)
            assert (await served.answer(5)).startswith(b"HTTP/1.1 200 ")
        assert not failures

    with caplog.at_level(logging.WARNING, logger=api_limits.__name__):
        asyncio.run(go())
    said = [r.getMessage() for r in caplog.records if r.name == api_limits.__name__]
    assert said == ["the REST API cannot accept now: Too many open files"], said


def test_the_cap_is_half_the_descriptors_left_after_the_reserve() -> None:
    assert connections_for(1024) == (1024 - api_limits.RESERVE) // 2 == 448
    assert connections_for(256) == 64
    assert connections_for(100) == api_limits.FEWEST
    assert connections_for(1 << 20) == connections_for(None) == api_limits.MOST
    config = ApiLimits(connections=64).config(App())
    assert (config.limit_concurrency, config.h11_max_incomplete_event_size) == (65, 16384)


async def test_a_node_s_api_takes_its_cap_from_the_descriptor_limit(net: ApiNetwork) -> None:
    await net.ring(1)
    async with await net.api(net.peers[0]) as http:
        assert (await http.get("/healthz")).json() == {"status": "serving"}
    assert net.apis[0].limits == ApiLimits(connections_for(descriptor_limit()))
