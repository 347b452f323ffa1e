"""`chordshare node` at run time: ports first, then the data directory, then the ring, then
the REST API with its token, until Ctrl-C or SIGTERM.

Both ports are taken before anything is written, so a node started on a port another one
uses stops with one line and leaves no data directory behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chordshare.faces.api_doors import Doors, listening_hosts
from chordshare.faces.api_token import OPEN, ApiAuth, api_token_file_in, load_or_make_token
from chordshare.faces.loops import first_of
from chordshare.node.server import NodeFailed, NodeSettings, StartError
from chordshare.sharing.peer import SharingPeer, SharingSettings
from chordshare.transport.address import is_loopback, is_wildcard, parse_address
from chordshare.transport.security import SecurityError, load_token

if TYPE_CHECKING:
    from chordshare.config import NodeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    address: str
    doors: Doors
    token: str | None = field(default=None, repr=False)  # given by the user
    open: bool = False  # no token at all
    protect_reads: bool = False

    def auth(self, data_dir: Path) -> ApiAuth:
        """The token the API asks for: the user's, none (`open`), or the node's own."""
        if self.open:
            return OPEN
        token = self.token if self.token is not None else load_or_make_token(data_dir)
        return ApiAuth(token, self.protect_reads)


def api_settings(conf: NodeConfig) -> ApiSettings:
    """The REST API's doors and token settings; SecurityError or ValueError if they cannot
    be used."""
    token = load_token(conf.api_token, conf.api_token_file, "API token")
    listening = listening_hosts(conf.api, conf.bind, conf.advertise)
    doors = Doors.for_node(listening, conf.api_allowed_hosts, conf.api_cors_origin)
    if token is not None:
        ApiAuth(token)  # ValueError now rather than once the node is on a ring
    return ApiSettings(conf.api, doors, token, conf.api_open, conf.api_protect_reads)


def open_doors(conf: NodeConfig) -> list[str]:
    """A warning for each door a node leaves open beyond what its user may expect."""
    warnings = []
    token = conf.cluster_token is not None or conf.cluster_token_file is not None
    if not is_loopback(conf.bind) and not token:
        warnings.append(
            f"the peer port {conf.bind} listens beyond loopback without a cluster token: "
            "anyone who reaches it can join the ring, read, store and delete files (give "
            "--cluster-token-file; see SECURITY.md)"
        )
    if conf.api_open and conf.api != "off":
        who = "any program on this machine" if is_loopback(conf.api) else "anyone who reaches it"
        warnings.append(
            f"the REST API at {conf.api} has no token (--api-open): {who} can upload, "
            "delete and stop this node"
        )
    return warnings


def default_data_dir(address: str) -> Path:
    """~/.local/share/chordshare/HOST_PORT (XDG_DATA_HOME if set); a new name when the
    port is 0, since the real port is not known yet. Created by the node once it listens."""
    root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    base = root / "chordshare"
    if address.endswith(":0"):
        return base / f"node-{secrets.token_hex(6)}"
    return base / re.sub(r"[^A-Za-z0-9.-]+", "_", address).strip("_")


def raise_descriptor_limit() -> None:
    """Raise the soft limit on open descriptors to the hard one, which a process may do
    unprivileged: the REST API's connection cap is drawn from it (`api_limits`). Says
    nothing unless it could not."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit (macOS) is no soft one the kernel takes: ask for plenty.
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as err:
        log.warning("cannot raise the open files limit from %s to %s: %s", soft, wanted, err)


def dashboard_url(api_url: str, auth: ApiAuth) -> str:
    """The URL a person opens: the API's, with a wildcard host made one a browser reaches,
    and the token in the fragment (which browsers never send to a server)."""
    host, port = parse_address(api_url.removeprefix("http://"), any_port=True)
    if is_wildcard(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"):
        api_url = f"http://{'[::1]' if ':' in host else '127.0.0.1'}:{port}"
    return f"{api_url}/" + (f"#token={auth.token}" if auth.token else "")


async def serve(
    settings: NodeSettings,
    sharing: SharingSettings,
    api: ApiSettings | None,
    say: Callable[[str], None],
) -> None:
    """Run one node until SIGINT or SIGTERM, then leave gracefully. StartError (and what
    `SharingPeer.start` raises) if it cannot start. The web framework is loaded only for
    a node that serves its API."""
    raise_descriptor_limit()
    sock = None
    if api is not None:
        from chordshare.faces.api import bind_api

        try:
            sock = bind_api(api.address)
        except OSError as err:
            raise StartError(f"--api {api.address}: cannot listen there: {err.strerror}") from None
    peer = SharingPeer(settings, sharing)
    try:
        chord = await peer.start()
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    stop = asyncio.Event()
    web = None
    try:
        if api is not None:
            try:
                auth = api.auth(sharing.data_dir)
            except (OSError, ValueError, SecurityError) as err:
                token_file = api_token_file_in(sharing.data_dir)
                raise StartError(f"API token {token_file}: {err}") from None
            from chordshare.faces.api import ApiServer

            web = ApiServer(peer, api.address, stop.set, auth, api.doors, sock)
            url = await web.start()
            say(f"api at {url} (OpenAPI at {url}/docs)")
            say(f"dashboard: {dashboard_url(url, auth)}")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say(
            f"node {chord.me.id} serving at {chord.me.address}, data in {sharing.data_dir}"
            + (f", joined through {settings.join}" if settings.join else ", new ring")
        )
        ended = peer.server.ended
        await first_of(stop.wait(), ended.wait())
        why = f"stopping: {peer.server.ending}" if ended.is_set() else "leaving"
        say(f"node {chord.me.id} {why}")
    finally:
        if web is not None:
            await web.stop()
        await peer.stop(graceful=True)
    if peer.server.tasks.failure is not None:
        raise NodeFailed("the node stopped because one of its tasks failed (see the log)")
