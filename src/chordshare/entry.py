"""The `chordshare` command's entry point: the CLI takes a moment to import (gRPC, Typer,
Rich), and a Ctrl-C in that moment ends the command quietly instead of with a traceback."""

from __future__ import annotations

import signal
import sys
from types import FrameType

INTERRUPTED = 130  # what a shell reports for a command ended by SIGINT


def _quit(signum: int, frame: FrameType | None) -> None:
    sys.exit(INTERRUPTED)


def main() -> None:
    signal.signal(signal.SIGINT, _quit)
    from chordshare.faces.cli import main as run_cli

    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_cli()
