"""`chordshare console --node HOST:PORT`: the seed project's numbered menu, as commands.

A `cmd.Cmd` shell with readline history (kept across sessions in ~/.chordshare_history, or
$CHORDSHARE_HISTORY) and tab completion of commands and of the network's file names. One
event loop lives as long as the console and holds one NodeClient and one GrpcFilePeers, so
a command costs a few RPCs, not a Python start and a new connection as a CLI call does.
A failing command (node down, no such file, bad name) prints one red line; the console goes
on, and reconnects by itself when the node answers again.
"""

from __future__ import annotations

import asyncio
import cmd
import contextlib
import glob
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.markup import escape

from chordshare.faces.clients import Clients
from chordshare.faces.leave import LeaveError, ask_to_leave
from chordshare.faces.loops import new_loop
from chordshare.faces.messages import describe, unreachable
from chordshare.faces.render import (
    HOLDERS_COLUMN,
    KIND_COLUMN,
    files_table,
    finger_runs_table,
    got_line,
    human,
    nodes_table,
    out,
    print_error,
    ring_table,
    short,
    stored_line,
)
from chordshare.faces.shapes import entries_json, listing_json, network_json
from chordshare.faces.transfers import destination, put_source, transfer_bar
from chordshare.sharing.names import printable
from chordshare.sharing.routes import RouteCache
from chordshare.transport.address import normalize_address
from chordshare.transport.base import PeerError
from chordshare.transport.security import PeerSecurity

if TYPE_CHECKING:
    from chordshare.sharing.client import FileClient
    from chordshare.transport.client import NodeClient

T = TypeVar("T")

PROMPT = "chordshare> "
HISTORY_ENV = "CHORDSHARE_HISTORY"
HISTORY_LENGTH = 1000
NAMES_TTL = 10.0  # seconds a network listing serves tab completion before it is asked again
COMPLETION_DEADLINE = 3.0  # a tab press must not hang the terminal on a slow ring
PROGRESS_FROM = 4 * 1024 * 1024  # smaller transfers end before a bar is worth drawing

COMMANDS_HELP = """Commands (help CMD for one):
  fingers      finger table of the node (distinct entries)
  predecessor  the node's predecessor
  successor    the node's successor list
  health       is the node serving, and how big is the ring
  ring         every node, walked along successors
  lookup NAME  which node owns NAME's key
  files        the files the node stores and shares
  all          every file in the network
  put PATH [NAME]            store a local file
  get NAME|sha256:HEX [PATH] download a file
  search WORDS               find files by the words of their names
  rm NAME                    remove a file from the network
  leave        ask the node to leave the ring and exit
  quit, exit   leave the console (Ctrl-D too)"""


class ConsoleError(Exception):
    """A user-facing failure of one command: printed as one red line."""


def history_path() -> Path:
    """Where history is kept: $CHORDSHARE_HISTORY (tests point it at a temporary file)."""
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".chordshare_history").expanduser()


def local_paths(text: str) -> list[str]:
    """Completions of a local path (directories end with /, to go on typing)."""
    found = []
    for match in sorted(glob.glob(glob.escape(os.path.expanduser(text)) + "*")):
        shown = text + match[len(os.path.expanduser(text)) :] if text.startswith("~") else match
        found.append(shown + "/" if os.path.isdir(match) else shown)
    return found


def completable(names: Iterable[str]) -> list[str]:
    """The names tab completion may offer: readline shows them raw, so a name a terminal
    would not show as itself is left out."""
    return [name for name in names if printable(name) == name]


class ChordConsole(cmd.Cmd):
    """The interactive console on one node. Every do_* docstring is that command's help."""

    prompt = PROMPT
    intro = ""
    doc_header = "Commands (help CMD for one):"

    def __init__(
        self,
        node: str,
        api: str | None = None,
        security: PeerSecurity | None = None,
        api_token_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.api_token_file = api_token_file
        self.api = api
        self.security = security or PeerSecurity()
        self.loop = new_loop()
        asyncio.set_event_loop(self.loop)
        self.clients: Clients | None = None
        self._names: tuple[float, list[str]] = (0.0, [])
        self.routes = RouteCache()  # the owners met by earlier commands

    # --- running commands ---------------------------------------------------------------

    async def _connected(self) -> tuple[NodeClient, FileClient]:
        """The client, connecting first if needed (a node that was down may be up now)."""
        if self.clients is None:
            try:
                self.clients = await Clients.open(self.node, self.security)
            except PeerError as err:
                raise ConsoleError(unreachable(err)) from None
        return self.clients.node, self.clients.files(self.routes)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one command's coroutine on the console's loop; Ctrl-C cancels it cleanly."""
        task = self.loop.create_task(coro)
        try:
            return self.loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(task)
            raise ConsoleError("interrupted") from None

    def _command(self, use: Callable[[NodeClient, FileClient], Awaitable[None]]) -> None:
        """Run a command; any expected failure becomes one red line."""

        async def go() -> None:
            client, files = await self._connected()
            await use(client, files)

        try:
            self._run(go())
        except ConsoleError as err:
            self.error(str(err))
        except Exception as err:
            message = describe(err)
            if message is None:
                raise
            self.error(message)

    @staticmethod
    def error(message: str) -> None:
        print_error(message)

    @staticmethod
    def args(line: str, least: int, most: int, usage: str) -> list[str]:
        """The command's arguments, shell-quoted ("my file.txt"); ConsoleError otherwise."""
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise ConsoleError(f"{err}; usage: {usage}") from None
        if not least <= len(words) <= most:
            raise ConsoleError(f"usage: {usage}")
        return words

    def onecmd(self, line: str) -> bool:
        try:
            return super().onecmd(line)
        except ConsoleError as err:  # bad arguments, before any RPC
            self.error(str(err))
            return False

    def emptyline(self) -> bool:
        return False  # cmd.Cmd would repeat the last command: surprising for `rm` or `put`

    def default(self, line: str) -> None:
        self.error(f"unknown command {line.split()[0]!r} (help lists them)")

    # --- the ring -----------------------------------------------------------------------

    def do_fingers(self, line: str) -> None:
        """fingers: the node's finger table, one row per distinct node (a run of fingers that
        all point at the same node is one row, with its range of i and its first start)."""
        self.args(line, 0, 0, "fingers")

        async def go(client: NodeClient, files: FileClient) -> None:
            out.print(finger_runs_table(await client.info()))

        self._command(go)

    def do_predecessor(self, line: str) -> None:
        """predecessor: the node just before this one on the ring (- while it has none)."""
        self.args(line, 0, 0, "predecessor")

        async def go(client: NodeClient, files: FileClient) -> None:
            info = await client.info()
            out.print(f"[bold]predecessor[/] {escape(short(info.predecessor))}", highlight=False)

        self._command(go)

    def do_successor(self, line: str) -> None:
        """successor: the node's successor list (the first is its successor; the others
        take over when it fails)."""
        self.args(line, 0, 0, "successor")

        async def go(client: NodeClient, files: FileClient) -> None:
            info = await client.info()
            out.print(nodes_table(info.successors, f"successor list of {short(info.node)}"))

        self._command(go)

    def do_health(self, line: str) -> None:
        """health: whether the node is SERVING (on a ring) or NOT_SERVING, how fast it
        answers, and how many nodes the ring has."""
        self.args(line, 0, 0, "health")

        async def go(client: NodeClient, files: FileClient) -> None:
            started = time.monotonic()
            hello = await client.transport.hello(client.address, client.deadline)
            ms = (time.monotonic() - started) * 1000
            if not hello.joined:
                out.print(
                    f"node {escape(short(hello.node))}: [bold red]NOT_SERVING[/] (not on a "
                    f"ring yet, or leaving); answered in {ms:.1f} ms",
                    highlight=False,
                )
                return
            nodes = await client.ring()
            out.print(
                f"node {escape(short(hello.node))}: [bold green]SERVING[/], answered in "
                f"{ms:.1f} ms\nring of {len(nodes)} node(s), {hello.bits}-bit ids",
                highlight=False,
            )

        self._command(go)

    def do_ring(self, line: str) -> None:
        """ring: every node of the ring, walked along successors from this one."""
        self.args(line, 0, 0, "ring")

        async def go(client: NodeClient, files: FileClient) -> None:
            out.print(ring_table(await client.ring(), client.address))

        self._command(go)

    def do_lookup(self, line: str) -> None:
        """lookup NAME: which node owns NAME's key (its hash), and in how many hops the
        node found it."""
        (name,) = self.args(line, 1, 1, "lookup NAME")

        async def go(client: NodeClient, files: FileClient) -> None:
            key = client.space.hash(name)
            answer = await client.lookup(key)
            out.print(
                f"key {key} is owned by node {answer.owner.id} at {escape(answer.owner.address)}"
                f" ({answer.hops} hop(s), {answer.seconds * 1000:.1f} ms)",
                highlight=False,
            )

        self._command(go)

    # --- files --------------------------------------------------------------------------

    def do_files(self, line: str) -> None:
        """files: the files this node stores (as owner or replica) and shares in place."""
        self.args(line, 0, 0, "files")

        async def go(client: NodeClient, files: FileClient) -> None:
            listing = await files.list_node(client.address)
            title = (
                f"{len(listing.files)} file(s) on {client.address} "
                f"({human(listing.used_bytes)} stored)"
            )
            rows = listing_json(client.address, listing)["files"]
            out.print(files_table(title, rows, KIND_COLUMN))

        self._command(go)

    def do_all(self, line: str) -> None:
        """all: every file in the network (asks every node of the ring), with its holders."""
        self.args(line, 0, 0, "all")

        async def go(client: NodeClient, files: FileClient) -> None:
            network = await files.list_network(await client.ring())
            self._names = (time.monotonic(), completable(f.manifest.name for f in network))
            title = f"{len(network)} file(s) in the network"
            out.print(files_table(title, network_json(network)["files"], HOLDERS_COLUMN))

        self._command(go)

    def do_put(self, line: str) -> None:
        """put [--replace] PATH [NAME]: store a local file in the network under NAME (default:
        its file name); --replace lets it replace a file of that name with other bytes."""
        words = self.args(line, 1, 3, "put [--replace] PATH [NAME]")
        replace = "--replace" in words
        words = [w for w in words if w != "--replace"]
        if not 1 <= len(words) <= 2:
            raise ConsoleError("usage: put [--replace] PATH [NAME]")
        path = Path(words[0]).expanduser()
        name = words[1] if len(words) == 2 else None

        async def go(client: NodeClient, files: FileClient) -> None:
            size = put_source(path)
            bar, advance = transfer_bar(f"put {name or path.name}", size, size >= PROGRESS_FROM)
            with bar:
                outcome = await files.put(path, name, replace=replace, progress=advance)
            self._names = (0.0, [])
            summary = stored_line(outcome.manifest, outcome.unchanged)
            out.print(summary, highlight=False, markup=False)

        self._command(go)

    def do_get(self, line: str) -> None:
        """get NAME|sha256:HEX [PATH] [--force]: download a file (by name, or by content)
        into PATH (default: ./NAME; a directory: NAME in it), pulling chunks from every
        holder; a file already there is kept unless --force."""
        words = self.args(line, 1, 3, "get NAME|sha256:HEX [PATH] [--force]")
        force = "--force" in words
        words = [w for w in words if w != "--force"]
        if not 1 <= len(words) <= 2:
            raise ConsoleError("usage: get NAME|sha256:HEX [PATH] [--force]")
        target = words[0]
        output = Path(words[1]).expanduser() if len(words) == 2 else None

        async def go(client: NodeClient, files: FileClient) -> None:
            found = await files.find(target)
            path = destination(found.manifest, output, force)
            size = found.manifest.size
            bar, advance = transfer_bar(f"get {found.manifest.name}", size, size >= PROGRESS_FROM)
            with bar:
                report = await files.get(target, path, progress=advance, found=found)
            summary = got_line(found.manifest.name, report.size, str(report.path), report.sources)
            out.print(summary, highlight=False, markup=False)

        self._command(go)

    def do_search(self, line: str) -> None:
        """search WORDS: files whose names contain every word (`search report` finds
        q3-report.pdf)."""
        if not line.strip():
            raise ConsoleError("usage: search WORDS")

        async def go(client: NodeClient, files: FileClient) -> None:
            entries = await files.search(line)
            title = f"{len(entries)} file(s) matching {line.strip()!r}"
            out.print(files_table(title, entries_json(entries)))

        self._command(go)

    def do_rm(self, line: str) -> None:
        """rm NAME: remove a file from the network (from its owner and every replica)."""
        (name,) = self.args(line, 1, 1, "rm NAME")

        async def go(client: NodeClient, files: FileClient) -> None:
            await files.remove(name)
            self._names = (0.0, [])
            out.print(f"removed {escape(printable(name))}", highlight=False)

        self._command(go)

    # --- the node -----------------------------------------------------------------------

    def do_leave(self, line: str) -> None:
        """leave: ask the node to leave the ring gracefully and exit. It takes this from
        its own host, or with the network's cluster token."""
        self.args(line, 0, 0, "leave")
        leaving = asyncio.to_thread(ask_to_leave, self.node, self.security)
        try:
            self._run(leaving)
        except (LeaveError, ConsoleError) as err:
            self.error(str(err))
            return
        out.print(f"node {escape(self.node)} is leaving the ring", highlight=False)

    def do_quit(self, line: str) -> bool:
        """quit: leave the console (exit and Ctrl-D too)."""
        return True

    def do_exit(self, line: str) -> bool:
        """exit: leave the console (quit and Ctrl-D too)."""
        return True

    def do_EOF(self, line: str) -> bool:
        """EOF (Ctrl-D): leave the console."""
        self.stdout.write("\n")
        return True

    def do_help(self, arg: str) -> bool | None:
        """help [CMD]: the commands, or what one of them does."""
        if arg.strip():
            return super().do_help(arg.strip())
        out.print(escape(COMMANDS_HELP), highlight=False)
        return None

    # --- completion ---------------------------------------------------------------------

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

    # --- life ---------------------------------------------------------------------------

    def preloop(self) -> None:
        """Connect at once so that a wrong address shows before the first command (the
        console still starts: the node may come up later)."""
        self._command(lambda client, files: asyncio.sleep(0))

    def close(self) -> None:
        async def go() -> None:
            if self.clients is not None:
                await self.clients.close()

        with contextlib.suppress(Exception):
            self.loop.run_until_complete(go())
        self.loop.close()
        asyncio.set_event_loop(None)


def _load_history(path: Path) -> Any:
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


def run_console(
    node: str,
    api: str | None = None,
    security: PeerSecurity | None = None,
    api_token_file: Path | None = None,
) -> None:
    """Run the console until quit, exit or Ctrl-D; save the history if the file is writable."""
    node = normalize_address(node)
    path = history_path()
    readline = _load_history(path)
    console = ChordConsole(node, api, security, api_token_file)
    out.print(
        f"chordshare console on {escape(node)}: help lists the commands, quit leaves",
        highlight=False,
    )
    try:
        while True:
            try:
                console.cmdloop()
                break
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh prompt, as a shell does
                console.stdout.write("^C\n")
    finally:
        console.close()
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(path)


__all__ = ["ChordConsole", "history_path", "run_console"]
