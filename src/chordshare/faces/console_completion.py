"""What readline gives the console: history kept across runs, and tab completion.

History is kept in ~/.chordshare_history, or $CHORDSHARE_HISTORY. Tab completes command
names, local paths, and the network's file names (from a listing of every node, cached a
few seconds and given up on after a deadline, so that a tab press never hangs the terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chordshare.faces.console_shell import NodeShell
from chordshare.files.names import printable
from chordshare.files.packs import is_pack_name
from chordshare.transport.security import PeerSecurity

HISTORY_ENV = "CHORDSHARE_HISTORY"
HISTORY_LENGTH = 1000
NAMES_TTL = 10.0  # seconds a network listing serves tab completion before it is asked again
COMPLETION_DEADLINE = 3.0  # a tab press must not hang the terminal on a slow ring


def history_path() -> Path:
    """Where history is kept: $CHORDSHARE_HISTORY (tests point it at a temporary file)."""
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".chordshare_history").expanduser()


def load_history(path: Path) -> Any:
    """readline with the saved history loaded; None where readline does not exist."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: no history, no completion
        return None
    readline.set_history_length(HISTORY_LENGTH)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    # File names hold '-' and '.': complete whole words, split on white space only.
    readline.set_completer_delims(" \t\n")
    return readline


def local_paths(text: str) -> list[str]:
    """Completions of a local path (directories end with /, to go on typing)."""
    found = []
    for match in sorted(glob.glob(glob.escape(os.path.expanduser(text)) + "*")):
        shown = text + match[len(os.path.expanduser(text)) :] if text.startswith("~") else match
        found.append(shown + "/" if os.path.isdir(match) else shown)
    return found


def completable(names: Iterable[str]) -> list[str]:
    """The names tab completion may offer: readline shows them raw, so a name a terminal
    would not show as itself is left out; so is a folder's pack (part of its folder)."""
    return [name for name in names if printable(name) == name and not is_pack_name(name)]


class CompletingShell(NodeShell):
    """A node's shell that completes its commands' arguments: file names in the network
    for get and rm, local paths for put and get's destination."""

    def __init__(self, node: str, security: PeerSecurity | None = None) -> None:
        super().__init__(node, security)
        # The network's names and when they were listed: `all` lists them anew, and a put
        # or rm makes them stale, so that the next tab press asks again.
        self._names: tuple[float, list[str]] = (0.0, [])

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        return [name for name in super().completenames(text, *ignored) if name != "EOF"]

    def network_names(self) -> list[str]:
        """File names in the network for completion: cached a few seconds, since a tab press
        walks the ring and asks every node."""
        stamp, names = self._names
        if names and time.monotonic() - stamp < NAMES_TTL:
            return names

        async def go() -> list[str]:
            client, files = await self._connected()
            network = await files.list_network(await client.ring())
            return completable(f.manifest.name for f in network)

        try:
            names = self._run(asyncio.wait_for(go(), COMPLETION_DEADLINE))
        except Exception:
            return []
        self._names = (time.monotonic(), names)
        return names

    @staticmethod
    def _argument_index(line: str, begidx: int) -> int:
        """Which argument (0 = first after the command) the cursor is completing."""
        return len(line[:begidx].split()) - 1

    def complete_get(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        if self._argument_index(line, begidx) == 0:
            return self.names_starting(text)
        return local_paths(text)

    def complete_rm(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        if self._argument_index(line, begidx) == 0:
            return self.names_starting(text)
        return []

    def names_starting(self, text: str) -> list[str]:
        """Network names that start with what was typed (a quote opened included), quoted
        as the command line reads them: `my notes.txt` is inserted as 'my notes.txt'."""
        typed = text.lstrip("'\"")
        return [shlex.quote(n) for n in self.network_names() if n.startswith(typed)]

    def complete_put(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        words = [w for w in line[:begidx].split()[1:] if w != "--replace"]
        return local_paths(text) if not words else []

    def complete_help(self, *args: Any) -> list[str]:
        return self.completenames(*args)
