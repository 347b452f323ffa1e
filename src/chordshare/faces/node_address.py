"""What `--node` must be, and what a user most often gives instead: the node's peer
address is HOST:PORT, not a URL, and not the port of its REST API (which answers HTTP/1.1,
where gRPC would print a raw HTTP/2 parse error)."""

from __future__ import annotations

import socket

from chordshare.transport.address import normalize_address, parse_address

HINT = "the node prints it as 'serving at HOST:PORT'"


def node_address(text: str) -> str:
    """The peer address in `text`; ValueError saying what is wrong with it otherwise."""
    if "://" in text:
        raise ValueError(
            f"--node {text}: give the node's peer address HOST:PORT, not a URL ({HINT}); "
            "a URL is for the REST API and the dashboard"
        )
    try:
        return normalize_address(text)
    except ValueError as err:
        raise ValueError(f"--node: {err}") from None


def answers_http(address: str, deadline: float = 1.0) -> bool:
    """Whether an HTTP/1.1 server (a node's REST API, say) listens at `address`."""
    try:
        with socket.create_connection(parse_address(address), timeout=deadline) as conn:
            conn.sendall(b"HEAD /healthz HTTP/1.0\r\n\r\n")
            return conn.recv(8).startswith(b"HTTP/1.")
    except (OSError, ValueError):
        return False


def not_a_peer_port(address: str) -> str:
    return (
        f"{address} is a REST API (a node's dashboard), not a node's peer port: give --node "
        f"the peer address ({HINT})"
    )
