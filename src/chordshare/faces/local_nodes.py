"""Nodes running on this machine, for the CLI and the console to find their API and token.

A node with an API writes a small record (its peer address, its API's URL, its data
directory) to a per-user folder while it runs, as Jupyter does for its servers. A client
told `--node HOST:PORT` finds the node's API there, and its token in the node's data
directory when this user may read it; the record holds no secret itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chordshare.faces.api_auth import api_token_file_in
from chordshare.transport.security import SecurityError, load_token


def records_dir() -> Path:
    """$XDG_RUNTIME_DIR/chordshare, or the data home's chordshare/run without one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "chordshare"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "chordshare" / "run"


@dataclass(frozen=True, slots=True)
class LocalNode:
    address: str  # the node's peer address (what --node names)
    api: str  # its API's base URL
    data_dir: Path
    pid: int

    def token(self) -> str | None:
        """The node's API token, if it made one and this user may read it."""
        try:
            return api_token_file_in(self.data_dir).read_text().strip() or None
        except OSError:
            return None


def record(node: LocalNode) -> Path:
    """Say that `node` runs (until `forget`); readable by this user only."""
    folder = records_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"node-{node.pid}-{re.sub(r'[^0-9A-Za-z.]+', '_', node.address)}.json"
    text = json.dumps(
        {"address": node.address, "api": node.api, "data_dir": str(node.data_dir), "pid": node.pid}
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def forget(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def running() -> list[LocalNode]:
    """The nodes whose records are here and whose process still runs (a record left by a
    node that was killed is removed)."""
    found = []
    try:
        paths = sorted(records_dir().glob("node-*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            raw = json.loads(path.read_text())
            node = LocalNode(raw["address"], raw["api"], Path(raw["data_dir"]), int(raw["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(node.pid):
            forget(path)
            continue
        found.append(node)
    return found


def find(address_or_url: str) -> LocalNode | None:
    """The running node with this peer address or API URL."""
    wanted = address_or_url.rstrip("/")
    for node in running():
        if wanted in (node.address, node.api, node.api.removeprefix("http://")):
            return node
    return None


def api_token_for(node: LocalNode | None, token_file: Path | None) -> str | None:
    """The token a client sends: `--api-token-file`'s, CHORDSHARE_API_TOKEN, or the node's
    own (None when none can be read: the API then answers 401, and the client says why)."""
    if token_file is not None:
        return load_token(None, token_file, "API token")
    given = os.environ.get("CHORDSHARE_API_TOKEN")
    if given:
        return given
    return node.token() if node is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaveError(Exception):
    """The node could not be asked to leave; the message says why and what to do."""


def ask_to_leave(node: str, api: str | None, token_file: Path | None) -> None:
    """Ask the node at peer address `node` to leave the ring and exit, through its REST API
    (gRPC has no leave call for clients): at `api`, or the URL its record on this machine
    gives, with `--api-token-file`'s token or the node's own. Blocking."""
    local = find(api or node)
    url = (api if api is not None else local.api if local is not None else None) or ""
    if not url:
        raise LeaveError(
            f"no node with the peer address {node} runs on this machine for this user: give "
            "its API's URL with --api (the node prints 'api at URL'), or send it SIGTERM"
        )
    url = (url if "://" in url else f"http://{url}").rstrip("/")
    try:
        token = api_token_for(local, token_file)
    except SecurityError as err:
        raise LeaveError(str(err)) from None
    request = urllib.request.Request(f"{url}/api/v1/node/leave", data=b"", method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as err:
        hint = ""
        if err.code == 401:
            hint = ": this user cannot read the node's token; give --api-token-file"
        raise LeaveError(f"{url}: HTTP {err.code} {_message(err)}{hint}") from None
    except (urllib.error.URLError, OSError) as err:
        raise LeaveError(f"{url}: {getattr(err, 'reason', err)}") from None


def _message(err: urllib.error.HTTPError) -> str:
    """The API's own error message (`{"error": {"message"}}`), else the reason phrase."""
    try:
        return str(json.loads(err.read())["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(err.reason)
