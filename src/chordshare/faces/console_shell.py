"""The console's shell: a `cmd.Cmd` whose commands run on one event loop against one node.

It connects to the node on first use (and again after a failure, when the node may be up
again), runs each command's coroutine with Ctrl-C cancelling it cleanly, reads a command's
shell-quoted arguments, and prints any expected failure as one red line so the console goes
on. The commands themselves are the console's (`console`).
"""

from __future__ import annotations

import asyncio
import cmd
import contextlib
import shlex
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from chordshare.faces.clients import Clients
from chordshare.faces.loops import new_loop
from chordshare.faces.messages import describe, unreachable
from chordshare.faces.render import print_error
from chordshare.files.publisher import Signer
from chordshare.sharing.routes import RouteCache
from chordshare.transport.base import PeerError
from chordshare.transport.security import PeerSecurity

if TYPE_CHECKING:
    from chordshare.sharing.client import FileClient
    from chordshare.transport.client import NodeClient

T = TypeVar("T")


class ConsoleError(Exception):
    """A user-facing failure of one command: printed as one red line."""


class NodeShell(cmd.Cmd):
    """Runs commands against the node at `node`, over clients it keeps open between them."""

    def __init__(self, node: str, security: PeerSecurity | None = None) -> None:
        super().__init__()
        self.node = node
        self.security = security or PeerSecurity()
        self.loop = new_loop()
        asyncio.set_event_loop(self.loop)
        self.clients: Clients | None = None
        self.routes = RouteCache()  # the owners met by earlier commands
        self.signer: Signer | None = None  # the publisher key puts and removals are signed with

    async def _connected(self) -> tuple[NodeClient, FileClient]:
        """The client, connecting first if needed (a node that was down may be up now)."""
        if self.clients is None:
            try:
                self.clients = await Clients.open(self.node, self.security)
            except PeerError as err:
                raise ConsoleError(unreachable(err)) from None
        return self.clients.node, self.clients.files(self.routes, self.signer)

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
