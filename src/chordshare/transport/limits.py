"""How much one peer may ask of a node: message sizes, the gRPC server's own limits, file
streams per peer, and how long a node waits on a peer that stopped sending.

The limits guard memory (message sizes, list lengths), tasks and file descriptors (calls
under way, streams per peer, idle connections and streams), so that one slow or hostile peer
cannot starve the others. They are far above what a well-behaved peer asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

T = TypeVar("T")

# Room for file chunks (up to 8 MiB) and their framing.
MAX_SERVER_MESSAGE_BYTES = 16 * 1024 * 1024

# Calls under way on one node besides the ring's own (`transport.call_share`), all peers
# together: each holds a task and its buffers, about a MiB for a chunk stream whose caller
# stopped reading. 1,024, gRPC's server-wide cap before this share: a node's own traffic is
# a few calls per neighbour and a few streams per transfer, and 25 hosts at their full
# per-host allowance (8 puts, 32 chunk streams) fit, so it only bites a flood. The ring's
# calls (Chord but Lookup, Admin, health checks) are cheap unary calls and never counted:
# a flood of file calls cannot make the node's Ping and Notify answers fail. Health Watch
# streams need no token and last as long as their caller likes: 16 at once, counted apart,
# so that they crowd out neither the ring's calls nor the files'.
CALL_SHARE = 1024
WATCH_SHARE = 16
# Streams open at once on one HTTP/2 connection; a peer's further calls wait in its own
# channel (flow control), not in the node.
MAX_STREAMS_PER_CONNECTION = 128
HANDSHAKE_TIMEOUT_MS = 10_000  # as the REST API's wait for a request head

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_SERVER_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_SERVER_MESSAGE_BYTES),
    ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
    ("grpc.max_metadata_size", 16 * 1024),
    # Peers ping every 10 s during calls (transport.grpc); one that pings far more often is
    # sent away after two strikes instead of keeping the node busy answering pings.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 2),
    # The node pings its clients too, so a connection whose peer vanished is closed (and its
    # descriptor freed) within about a minute and a half, not after the OS's two hours.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # A connection without calls for ten minutes is closed; a peer's channel reconnects.
    ("grpc.max_connection_idle_ms", 600_000),
    # A connection must finish its handshake (TCP, TLS, the client's HTTP/2 settings) within
    # this, a few round trips: gRPC's default of two minutes let a client that connects and
    # sends nothing hold a descriptor that long, as slowloris did to the REST API.
    ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
    # gRPC's default SO_REUSEPORT lets a second node listen on a port a node already uses,
    # and the kernel then splits the connections between two rings.
    ("grpc.so_reuseport", 0),
]

# Lengths of the lists one request may carry. A well-behaved peer sends at most a manifest's
# chunk hashes at once (MissingChunks), a download batch of indexes (tens), 512 offered
# versions and one publisher's index records; a longer list costs the node memory and work
# out of proportion to the message.
MAX_FETCH_INDEXES = 4096
MAX_OFFER_FILES = 4096
MAX_INDEX_RECORDS = 65_536
MAX_LOCATORS = 4096
MAX_SUCCESSORS = 1024  # in a Leave notice; a ring keeps a few (DEFAULT_SUCCESSORS)
MAX_TEXT = 1024  # characters of a name, index key or address inside a request

# How long a soft record (index entry, locator) may be asked to live: publishers refresh them
# every 30 s and ask for three times that.
MAX_SOFT_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Limits on the file streams of one node."""

    puts_per_peer: int = 8  # puts from one host at once (each holds a few chunks in memory)
    fetches_per_peer: int = 32  # fetch streams to one host at once (downloads use 2 each)
    put_idle: float = 60.0  # seconds a put may wait for its next message before it is dropped


def peer_host(peer: str) -> str:
    """What a per-peer limit counts by, from a gRPC peer string ("ipv4:10.0.0.5:4123"): the
    host, so that one host's many connections are one peer. Except on loopback, where every
    node of a local network (a laptop demo, a test ring) shares one address: there each
    connection counts on its own, and the per-connection stream cap still holds."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        host = rest[1:].partition("]")[0]
    elif kind == "ipv4":
        host = rest.rpartition(":")[0] or rest
    else:
        return peer
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return peer
    return host


class TooManyStreams(Exception):
    """A peer already has as many streams of a kind open as it may."""


# A peer refused for load is told to try again after this long (a put or a chunk stream
# under way ends within about that), in the trailing metadata of an UNAVAILABLE: the status
# says "not now", the metadata that the node is alive and only busy.
BUSY_RETRY_AFTER = 1.0
RETRY_AFTER_METADATA = "chordshare-retry-after-ms"


def busy_metadata(retry_after: float = BUSY_RETRY_AFTER) -> tuple[tuple[str, str], ...]:
    return ((RETRY_AFTER_METADATA, str(round(retry_after * 1000))),)


# A signed put or removal whose version is not after the name's newest is refused with the
# version it must pass, so the client can sign again above it.
VERSION_FLOOR_METADATA = "chordshare-version-floor"


def version_floor_metadata(floor: float | None) -> tuple[tuple[str, str], ...]:
    return () if floor is None else ((VERSION_FLOOR_METADATA, repr(floor)),)


def version_floor_of(metadata: object) -> float | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == VERSION_FLOOR_METADATA:
            with contextlib.suppress(ValueError):
                floor = float(value)
                if math.isfinite(floor) and floor >= 0:
                    return floor
    return None


def retry_after_of(metadata: object) -> float | None:
    """The wait a busy node asked for, from a call's trailing metadata (None if it did not
    ask, or asked nonsense)."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == RETRY_AFTER_METADATA:
            with contextlib.suppress(ValueError):
                millis = int(value)
                if 0 <= millis <= 60_000:
                    return millis / 1000
    return None


class PeerSlots:
    """Counts what each peer host has under way and refuses one more beyond `limit`."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._held: Counter[str] = Counter()
        self.refused = 0  # streams refused for load, all peers together

    def held(self, host: str) -> int:
        return self._held[host]

    def held_in_all(self) -> int:
        return self._held.total()

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        if self._held[host] >= self.limit:
            self.refused += 1
            raise TooManyStreams(
                f"{host} already has {self._held[host]} {self.what} open here, the most "
                f"one peer may; try again when one has ended"
            )
        self._held[host] += 1
        try:
            yield
        finally:
            self._held[host] -= 1
            if not self._held[host]:
                del self._held[host]


# What a client still sends after the node has its answer (a refusal, a request that does
# not parse, or "unchanged" for bytes it had) is read and dropped, up to these bounds, before
# the answer goes out: a grpc.aio client still writing when the status arrives reports
# INTERNAL "Internal error from Core" instead of it (grpc/grpc#36066), and the user would
# never learn the answer. Small requests, the common case, end well inside the bounds.
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 2.0


async def drain(stream: AsyncIterator[T], size: Callable[[T], int]) -> None:
    """Read and drop the rest of a request stream, within DRAIN_BYTES and DRAIN_SECONDS."""
    received = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for item in stream:
                received += size(item)
                if received > DRAIN_BYTES:
                    return
    except grpc.aio.AbortError:
        raise  # a message that did not parse was refused already: that is the answer
    except Exception:  # the client went away, or the bounds ran out: answer now
        return
