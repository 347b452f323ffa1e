"""Which requests may reach the REST API at all: the Host and Origin checks.

Loopback is no boundary against the browser on the same machine. A page from any site can
send a form POST or an `<img>` to `http://127.0.0.1:PORT` (cross-site request forgery), and
a site whose name it re-points at 127.0.0.1 (DNS rebinding) can read the answers too, since
the browser then thinks them its own. So, whatever the token settings:

- a request whose `Host` is not one of the node's own names is refused (rebinding needs a
  name the attacker controls); `/healthz` answers any Host, for probes;
- a state-changing request that says it comes from a page (`Origin`, or without one a
  `Referer`) of another origin than the API's own, or one the user listed, is refused.

`Doors` decides from plain values; `DoorCheck` is the ASGI middleware that asks it before
anything else runs, a body included.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chordshare.transport.address import WILDCARD_HOSTS, parse_address

log = logging.getLogger(__name__)

ALWAYS_OURS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz"})  # probes name the node however they like
DEFAULT_PORTS = {"http": 80, "https": 443}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def split_host(text: str) -> tuple[str, int | None] | None:
    """`Host`'s name (lower case, brackets and a final dot dropped) and port; None when it
    is not a host."""
    text = text.strip().lower()
    if not text or any(c in text for c in "/@\\ ") or not text.isascii():
        return None
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = text.partition(":")
        if ":" in port_text:
            return None
    if port_text and not (port_text.isdigit() and int(port_text) < 65536):
        return None
    name = name.removesuffix(".")
    return (name, int(port_text) if port_text else None) if name else None


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_own_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is an address of one of this host's interfaces: the kernel lets a socket
    bind only to those."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


def listening_hosts(*addresses: str | None) -> list[str]:
    """The hosts of a node's addresses (its API's, its peer bind and advertise ones), those
    given; each may be a wildcard, with port 0."""
    return [parse_address(a, any_port=True)[0] for a in addresses if a]


@dataclass(frozen=True, slots=True)
class Doors:
    """The names a node answers to, and the page origins that may change it.

    `names`: host names and IP literals (no port) that are the node's own. `any_interface`:
    the API or the node listens on every interface, so every address of this host is its
    own too. `origins`: origins (scheme://host[:port]) that may call it from a page, beside
    its own."""

    names: frozenset[str]
    any_interface: bool = False
    origins: frozenset[str] = frozenset()
    own_address: Callable[[Any], bool] = field(default=is_own_address, compare=False)

    @classmethod
    def for_node(
        cls,
        listening: Iterable[str],
        allowed_hosts: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
    ) -> Doors:
        """The doors of a node whose API and peer port listen on the hosts `listening`
        (bind and advertise hosts, without ports), with the user's extra names and
        origins."""
        hosts = {h.strip("[]").lower() for h in listening}
        wildcard = any(h in WILDCARD_HOSTS for h in hosts)
        names = set(ALWAYS_OURS) | {h for h in hosts if h not in WILDCARD_HOSTS}
        if wildcard:
            names.add(socket.gethostname().lower())
        for given in allowed_hosts:
            parsed = split_host(given)
            if parsed is None:
                raise ValueError(f"--api-allowed-hosts: {given!r} is not a host name")
            names.add(parsed[0])
        return cls(frozenset(names), wildcard, frozenset(normal_origin(o) for o in cors_origins))

    def host_allowed(self, host: str | None) -> bool:
        parsed = split_host(host or "")
        if parsed is None:
            return False
        name = parsed[0]
        if name in self.names:
            return True
        ip = ip_literal(name)
        return ip is not None and self.any_interface and self.own_address(ip)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """May a page of `origin` (an Origin header, or a Referer) change the node it
        reached under `host`? Its own origin may, and the listed ones."""
        if origin in self.origins or _origin_of(origin) in self.origins:
            return True
        page, ours = _netloc(origin), split_host(host)
        if page is None or ours is None:
            return False
        # The scheme is not compared: behind a TLS proxy the page is https, the Host the same.
        return page[0] == ours[0] and (page[1] == ours[1] or ours[1] is None)

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        """Why a request must not go on (answered 403), or None."""
        host = headers.get("host")
        if path not in OPEN_PATHS and not self.host_allowed(host):
            return (
                f"this node does not answer to the name {host!r}; a name in front of it (a DNS "
                "name, a proxy) must be given with --api-allowed-hosts"
            )
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin") or headers.get("referer")
        if origin is not None and not self.origin_allowed(origin, host or ""):
            return (
                f"a page of another origin ({_origin_of(origin) or origin!r}) may not change "
                "this node; list it with --api-cors-origin if it should"
            )
        return None


def normal_origin(text: str) -> str:
    origin = _origin_of(text)
    if origin is None:
        raise ValueError(f"--api-cors-origin: {text!r} is not an origin like http://host:port")
    return origin


def _url_parts(url: str) -> tuple[str, str, int | None] | None:
    """The scheme, host (lower case, no final dot) and explicit port of an http(s) URL (an
    Origin, a Referer), the scheme's default port dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if port == DEFAULT_PORTS[parts.scheme]:
        port = None
    return parts.scheme, parts.hostname.lower().removesuffix("."), port


def _origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL."""
    parts = _url_parts(url)
    if parts is None:
        return None
    scheme, host, port = parts
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _netloc(url: str) -> tuple[str, int | None] | None:
    parts = _url_parts(url)
    return None if parts is None else parts[1:]


class DoorCheck:
    """ASGI middleware: refuses with 403 and the API's JSON error what `Doors` refuses,
    before routing, authentication or reading a body."""

    def __init__(self, app: AsgiApp, doors: Doors) -> None:
        self.app = app
        self.doors = doors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self.doors.refusal(scope["method"], scope["path"], headers)
        if refused is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        log.info(
            "api refused %s %r from %s: %s", scope["method"], scope["path"], client[0], refused
        )
        body = json.dumps({"error": {"code": "forbidden", "message": refused}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
