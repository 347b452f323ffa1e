"""The `chordshare` command in a process of its own, as a user runs it, for async tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

CLI = (sys.executable, "-m", "chordshare.faces.cli")
CLI_DEADLINE = 30.0


async def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run one command (in this process's environment, or `env`, wide enough that no name
    wraps); its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**(os.environ if env is None else env), "COLUMNS": "200"},
        cwd=cwd,
    )
    async with asyncio.timeout(CLI_DEADLINE):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_bare_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run one command in `cwd` with no CHORDSHARE_* setting to go by: a machine given
    nothing but what the command says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORDSHARE_")}
    return await run_cli(*args, env=env, cwd=cwd)
