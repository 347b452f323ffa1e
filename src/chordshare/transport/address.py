"""Parsing and checking `host:port` addresses."""

from __future__ import annotations

import functools
import ipaddress

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def parse_address(text: str, any_port: bool = False) -> tuple[str, int]:
    """Split `host:port` (or `[v6]:port`) and check both parts; ValueError names the problem.

    any_port: port 0 is allowed, meaning "let the system choose" (for binding).
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"malformed address {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"malformed address {text!r}: {host!r} is not an IPv6 address"
            ) from None
    elif ":" in host:
        raise ValueError(f"malformed address {text!r}: write IPv6 hosts as [addr]:port")
    lowest = 0 if any_port else 1
    if not port_text.isdigit() or not lowest <= int(port_text) < 65536:
        raise ValueError(
            f"malformed address {text!r}: port must be a number from {lowest} to 65535"
        )
    if any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"malformed address {text!r}: bad host {host!r}")
    return host, int(port_text)


# Every reply names nodes by address, and a ring has few: parse each once.
@functools.lru_cache(maxsize=4096)
def normalize_address(text: str) -> str:
    """The canonical `host:port` form of an address."""
    host, port = parse_address(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_wildcard(text: str) -> bool:
    host, _ = parse_address(text, any_port=True)
    return host in WILDCARD_HOSTS


def is_loopback(text: str) -> bool:
    host, _ = parse_address(text, any_port=True)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
