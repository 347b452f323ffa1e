"""`chordshare console --node HOST:PORT`: the seed project's numbered menu, as commands.

A `cmd.Cmd` shell with readline history (kept across runs in ~/.chordshare_history, or
$CHORDSHARE_HISTORY) and tab completion of commands and of the network's file names
(`console_completion`). One event loop lives as long as the console and holds one
NodeClient and one GrpcFilePeers, so a command costs a few RPCs, not a Python start and a
new connection as a CLI call does. A failing command (node down, no such file, bad name)
prints one red line; the console goes on, and reconnects by itself when the node answers
again (`console_shell`). This module holds the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from chordshare.faces.clients import ask_to_keep
from chordshare.faces.console_completion import (
    CompletingShell,
    completable,
    history_path,
    load_history,
)
from chordshare.faces.console_shell import ConsoleError
from chordshare.faces.leave import LeaveError, ask_to_leave
from chordshare.faces.render import (
    HOLDERS_COLUMN,
    KIND_COLUMN,
    err_console,
    files_table,
    finger_runs_table,
    got_line,
    human,
    nodes_table,
    out,
    resumed_line,
    ring_table,
    short,
    stored_line,
)
from chordshare.faces.shapes import entries_json, listing_json, network_json
from chordshare.faces.transfers import destination, put_source, transfer_bar
from chordshare.files.folders import check_plain_name
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import printable
from chordshare.files.publisher import Signer
from chordshare.transport.address import normalize_address
from chordshare.transport.security import PeerSecurity

if TYPE_CHECKING:
    from chordshare.files.unfinished import Resume
    from chordshare.sharing.client import FileClient
    from chordshare.transport.client import NodeClient

PROMPT = "chordshare> "
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


class ChordConsole(CompletingShell):
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
        super().__init__(node, security)
        self.api_token_file = api_token_file
        self.api = api

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
            rows = listing_json(client.address, listing)["files"]
            title = f"{len(rows)} file(s) on {client.address} ({human(listing.used_bytes)} stored)"
            out.print(files_table(title, rows, KIND_COLUMN))

        self._command(go)

    def do_all(self, line: str) -> None:
        """all: every file in the network (asks every node of the ring), with its holders."""
        self.args(line, 0, 0, "all")

        async def go(client: NodeClient, files: FileClient) -> None:
            rows = network_json(await files.list_network(await client.ring()))["files"]
            self._names = (time.monotonic(), completable(f["name"] for f in rows))
            title = f"{len(rows)} file(s) in the network"
            out.print(files_table(title, rows, HOLDERS_COLUMN))

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
            check_plain_name(name or path.name)
            bar, advance = transfer_bar(f"put {name or path.name}", size, size >= PROGRESS_FROM)

            def resumed(note: Resume) -> None:
                line = resumed_line(name or path.name, note)
                err_console.print(line, highlight=False, markup=False)

            with bar:
                outcome = await files.put(
                    path, name, replace=replace, progress=advance, resumed=resumed
                )
            self._names = (0.0, [])
            summary = stored_line(outcome.manifest, outcome.unchanged)
            out.print(summary, highlight=False, markup=False)

        self._command(go)

    def do_get(self, line: str) -> None:
        """get NAME|sha256:HEX [PATH] [--force]: download a file (by name, or by content)
        into PATH (default: ./NAME; a directory: NAME in it), pulling chunks from every
        holder; a file already there is kept unless --force. The node keeps a copy too, and
        serves it to other getters."""
        words = self.args(line, 1, 3, "get NAME|sha256:HEX [PATH] [--force]")
        force = "--force" in words
        words = [w for w in words if w != "--force"]
        if not 1 <= len(words) <= 2:
            raise ConsoleError("usage: get NAME|sha256:HEX [PATH] [--force]")
        target = words[0]
        output = Path(words[1]).expanduser() if len(words) == 2 else None

        async def go(client: NodeClient, files: FileClient) -> None:
            try:
                found = await files.find(target)
            except FileError as err:
                packed = await _packed_instead(files, err, target, output, force)
                if packed is None:
                    raise
                sources = {s["address"]: s["bytes"] for s in packed["sources"]}
                summary = got_line(target, packed["size"], packed["path"], sources)
                out.print(summary, highlight=False, markup=False)
                return
            path = destination(found.manifest.name, output, force)
            size = found.manifest.size
            bar, advance = transfer_bar(f"get {found.manifest.name}", size, size >= PROGRESS_FROM)
            with bar:
                report = await files.get(target, path, progress=advance, found=found)
            summary = got_line(found.manifest.name, report.size, str(report.path), report.sources)
            out.print(summary, highlight=False, markup=False)
            await ask_to_keep(files.peers, client.address, found.manifest)

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


def run_console(
    node: str,
    api: str | None = None,
    security: PeerSecurity | None = None,
    api_token_file: Path | None = None,
    signer: Signer | None = None,
) -> None:
    """Run the console until quit, exit or Ctrl-D; save the history if the file is writable."""
    node = normalize_address(node)
    path = history_path()
    readline = load_history(path)
    console = ChordConsole(node, api, security, api_token_file)
    console.signer = signer
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


__all__ = ["ChordConsole", "run_console"]


async def _packed_instead(
    files: FileClient, err: FileError, target: str, output: Path | None, force: bool
) -> dict[str, Any] | None:
    """A get of a name no file has: the file of that path inside a folder's pack, as the
    CLI gets it (`folders_cli.get_packed`); None when there is none."""
    if err.refusal is not Refusal.NOT_FOUND:
        return None
    from chordshare.faces.folders_cli import get_packed
    from chordshare.sharing.folder_client import FolderClient

    return await get_packed(FolderClient(files), target, output, force, shown=False)
