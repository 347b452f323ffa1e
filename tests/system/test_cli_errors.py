"""System tests: the CLI refuses bad input and unreachable or foreign peers with one line.

Each case runs `chordshare` in a process of its own and expects a non-zero exit, exactly one
line on stderr starting with "error:" (no traceback), and an answer within seconds. Cases that
try to join the small ring below are followed by a ring check: a failed join must leave the
ring as it was.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from helpers import Processes, cli_ring, free_port, rotated, run_cli

pytestmark = [pytest.mark.processes, pytest.mark.timeout(60)]

BITS = 5
RING_IDS = [5, 20]
FAST = 10.0  # seconds: every refusal must be quicker than this


@dataclass(frozen=True)
class Places:
    """Addresses the cases point at."""

    ring: dict[int, str]  # the live ring's nodes by id
    closed: str  # nothing listens here
    garbage: str  # a TCP server that answers with something that is not gRPC
    silent: str  # a socket that accepts connections (the kernel does) and never answers


class GarbageHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            self.request.recv(1024)
            self.request.sendall(b"HTTP/1.0 200 OK\r\n\r\nthis is not gRPC\r\n" * 8)
        except OSError:
            pass


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Places]:
    procs = Processes(tmp_path_factory.mktemp("ring"))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), GarbageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        first = procs.start(node_id=RING_IDS[0], bits=BITS)
        procs.start(node_id=RING_IDS[1], bits=BITS, join=first.address)
        host, port = server.server_address[:2]
        yield Places(
            ring={n.id: n.address for n in procs.nodes},
            closed=f"127.0.0.1:{free_port()}",
            garbage=f"{host}:{port}",
            silent=f"127.0.0.1:{silent.getsockname()[1]}",
        )
    finally:
        silent.close()
        server.shutdown()
        server.server_close()
        procs.cleanup()


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # {ring}, {holder}, {closed}, {garbage} are filled in
    says: str  # expected in the message (same placeholders)
    joins_ring: bool = False


NODE = ("node", "--bind", "127.0.0.1:0")
CASES = [
    Case(
        "join-unreachable",
        (*NODE, "--bits", "5", "--join", "{closed}"),
        "cannot reach {closed} to join: connection refused",
    ),
    Case("join-malformed", (*NODE, "--join", "notanaddress"), "malformed address 'notanaddress'"),
    Case("join-not-grpc", (*NODE, "--bits", "5", "--join", "{garbage}"), "cannot reach {garbage}"),
    Case(
        "join-silent-peer",  # a hung host: the join deadline (5 s) gives up on it
        (*NODE, "--bits", "5", "--join", "{silent}"),
        "cannot reach {silent} to join: did not answer in time",
    ),
    Case(
        "id-outside-ring",
        (*NODE, "--id", "99", "--bits", "5", "--join", "{ring}"),
        "id 99 is outside 0..31",
        joins_ring=True,
    ),
    Case(
        "bits-too-small",
        (*NODE, "--bits", "2", "--join", "{ring}"),
        "bits must be between 3 and 160",
        joins_ring=True,
    ),
    Case(
        "bits-differ-from-ring",
        (*NODE, "--bits", "6", "--join", "{ring}"),
        "uses 5-bit ids",
        joins_ring=True,
    ),
    Case(
        "duplicate-id",
        (*NODE, "--id", "5", "--bits", "5", "--join", "{ring}"),
        "id 5 is already held by the node at {holder}",
        joins_ring=True,
    ),
    Case(
        "wildcard-bind-without-advertise",
        ("node", "--bind", "0.0.0.0:0", "--bits", "5", "--join", "{ring}"),
        "give --advertise HOST:PORT",
        joins_ring=True,
    ),
    Case("info-closed-port", ("info", "--node", "{closed}", "--json"), "cannot reach {closed}"),
    Case("ring-closed-port", ("ring", "--node", "{closed}"), "cannot reach {closed}"),
    Case(
        "lookup-malformed-node",
        ("lookup", "--id", "3", "--node", "notanaddress", "--json"),
        "malformed address 'notanaddress'",
    ),
    Case(
        "lookup-unbracketed-ipv6",
        ("lookup", "--id", "3", "--node", "::1:7000"),
        "write IPv6 hosts as [addr]:port",  # brackets survive the console's markup
    ),
    Case(
        "lookup-id-outside-ring", ("lookup", "--id", "99", "--node", "{ring}"), "id 99 is outside"
    ),
]


def fill(text: str, places: Places) -> str:
    return text.format(
        ring=places.ring[20],
        holder=places.ring[5],
        closed=places.closed,
        garbage=places.garbage,
        silent=places.silent,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_with_one_line(case: Case, places: Places) -> None:
    result = run_cli(*(fill(a, places) for a in case.args), timeout=FAST)
    assert result.code == 2, result
    assert result.stdout == "", result
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert line.startswith("error: "), line
    assert fill(case.says, places) in line, line
    assert result.seconds < FAST
    if case.joins_ring:
        for ident in RING_IDS:
            assert cli_ring(places.ring[ident]) == rotated(RING_IDS, ident)
