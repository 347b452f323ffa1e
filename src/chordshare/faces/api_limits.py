"""Limits that keep slow or many clients of the REST API from taking its node off the ring.

uvicorn closes a kept-alive connection that sends nothing, but a connection that sends a
request head a byte at a time lives as long as it likes, and uvicorn accepts every
connection it is offered (its `limit_concurrency` answers 503, once it has accepted). A
thousand such clients used to hold a thousand descriptors, until gRPC could accept no peer
and the node fell off its ring. So:

- `HeadTimedH11`: h11's protocol with a deadline on every request head, counted from the
  connect or from the end of the previous answer, whatever bytes arrive meanwhile;
- `LimitedServer`: a uvicorn server that accepts for itself and stops calling accept while
  `ApiLimits.connections` are open; the next clients wait in the kernel's listen backlog,
  where they cost the process no descriptor;
- `ApiLimits.for_process()`: that cap, from the process's descriptor limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0  # seconds: a person's browser or CLI sends its head in one packet
RESERVE = 128  # descriptors kept for gRPC, the catalog, chunk files and logs
FEWEST, MOST = 16, 4096  # the API's connections, whatever the descriptor limit
# accept(2) errors that mean "out of descriptors or memory now", and "no socket to accept
# on"; any other is one client's connection failing before it was accepted.
SHORT_OF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
GONE = {errno.EBADF, errno.EINVAL, errno.ENOTSOCK}
RETRY = 1.0  # seconds before accepting again when short of them (as asyncio's own server)


def descriptor_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE; None if unlimited or unknown (no `resource`)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connections_for(nofile: int | None) -> int:
    """The API's share of `nofile` descriptors: half of what the reserve leaves (each
    request may open a file or a gRPC call besides its connection), within FEWEST..MOST."""
    if nofile is None:
        return MOST
    return max(FEWEST, min(MOST, (nofile - RESERVE) // 2))


@dataclass(frozen=True, slots=True)
class ApiLimits:
    connections: int  # open at once; the next wait in the listen backlog
    head_timeout: float = HEAD_TIMEOUT  # seconds for each request head
    keep_alive: int = 5  # seconds an idle connection is kept between requests
    max_head: int = 16 * 1024  # bytes of a request head; ours are a few hundred

    @classmethod
    def for_process(cls) -> ApiLimits:
        return cls(connections_for(descriptor_limit()))

    def config(self, app: Any, **options: Any) -> uvicorn.Config:
        """uvicorn's settings for `app` under these limits, with `options` besides."""
        return uvicorn.Config(
            app,
            http=HeadTimedH11,  # h11's, timed; httptools is not used even where installed
            ws="none",  # the API has no websockets; a protocol swap would escape the count
            # The dashboard polls every 1.5 s: a short keep-alive saves it reconnects
            # without keeping the idle connections of clients that went.
            timeout_keep_alive=self.keep_alive,
            # A bigger head is refused with 400 once that much is buffered (h11's default).
            h11_max_incomplete_event_size=self.max_head,
            # uvicorn answers 503 at this many connections or requests under way; the
            # accept cap keeps connections below it, so it bounds only requests still
            # running after their client went, which the cap does not see.
            limit_concurrency=self.connections + 1,
            **options,
        )


class Room:
    """How many connections are open, and a wait for one to close."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self._left = asyncio.Event()

    def enter(self) -> None:
        self.open += 1

    def leave(self) -> None:
        self.open -= 1
        self._left.set()

    async def wait(self) -> None:
        """Return once fewer than `cap` are open."""
        while self.open >= self.cap:
            self._left.clear()
            await self._left.wait()


class HeadTimedH11(H11Protocol):
    """h11's protocol, closing a connection that has not sent a whole request head within
    `head_timeout` of its connect or of the end of its previous answer. uvicorn's own
    keep-alive timer restarts on every byte, so a head sent a byte a second outlived it.
    Counted in `room` from its connect to its loss."""

    def __init__(self, *args: Any, head_timeout: float, room: Room, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self.room = room
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.room.enter()
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole head came: the app answers now
            self._stop_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next head, unless a pipelined one was already read.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        try:
            super().connection_lost(exc)
        finally:
            self.room.leave()

    def _await_head(self) -> None:
        self._stop_timer()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _stop_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_late(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class LimitedServer(uvicorn.Server):
    """A uvicorn server that accepts on its sockets itself, with at most
    `limits.connections` open: at the cap it stops calling accept (asyncio's and uvloop's
    servers cannot be paused) until one closes."""

    def __init__(self, config: uvicorn.Config, limits: ApiLimits) -> None:
        super().__init__(config)
        self.limits = limits
        self.room = Room(limits.connections)
        self._accepting: list[asyncio.Task[None]] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            raise ValueError("a LimitedServer serves the sockets it is given")
        await super().startup(sockets=[])  # uvicorn's part, without its own accepting
        for sock in sockets:
            sock.setblocking(False)
            name = f"api-accept-{sock.getsockname()[1]}"
            self._accepting.append(asyncio.create_task(self._accept(sock), name=name))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for task in self._accepting:
            task.cancel()
        for task in self._accepting:
            with contextlib.suppress(asyncio.CancelledError, OSError):  # OSError: GONE
                await task
        self._accepting = []
        await super().shutdown(sockets=sockets)  # closes the sockets and the connections

    def _protocol(self) -> asyncio.Protocol:
        return HeadTimedH11(
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            head_timeout=self.limits.head_timeout,
            room=self.room,
        )

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        short = False
        while True:
            await self.room.wait()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as err:
                if err.errno in GONE:
                    raise
                if err.errno in SHORT_OF:
                    if not short:  # once while it lasts, not once a second
                        log.warning("the REST API cannot accept now: %s", err.strerror)
                    short = True
                    await asyncio.sleep(RETRY)
                continue
            short = False
            try:
                # Returns once connection_made has run: the room counts it already.
                await loop.connect_accepted_socket(self._protocol, conn)
            except OSError:
                conn.close()  # reset before it was set up
