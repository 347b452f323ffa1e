"""A bad rate is one line and exit 2, wherever it is given: a get's or a put's
--limit-rate, a node's --max-*-rate flags, its CHORDSHARE_MAX_*_RATE variables and its
settings file; a good one caps the command's transfer. Each command runs in a process of
its own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

from peernet import PeerNetwork, store_directly

CLI = (sys.executable, "-m", "chordshare.faces.cli")
RATE_HINT = "is not a rate (bytes per second, e.g. 500K, 4M or 1MiB; 0: no limit)"


async def cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_a_bad_rate_is_one_line_and_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a file\n")
    settings = tmp_path / "node.yaml"
    settings.write_text("max_download_rate: -1\n")
    nowhere = ["--node", "127.0.0.1:1"]  # never reached: the rate is refused first
    bind = ["node", "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    cases = {
        ("get", "a.txt", "--limit-rate", "-1", *nowhere): "--limit-rate: '-1' ",
        ("put", str(source), "--limit-rate", "abc", *nowhere): "--limit-rate: 'abc' ",
        (*bind, "--max-upload-rate", "-1"): "max_upload_rate: '-1' ",
        (*bind, "--max-repair-rate", "fast"): "max_repair_rate: 'fast' ",
        (*bind, "--config", str(settings)): "max_download_rate: -1 ",
        (*bind, "ENV"): "max_repair_rate: 'abc' ",
    }
    runs = [
        cli(
            [a for a in args if a != "ENV"],
            {"CHORDSHARE_MAX_REPAIR_RATE": "abc"} if "ENV" in args else None,
        )
        for args in cases
    ]
    for (args, said), (code, err) in zip(cases.items(), await asyncio.gather(*runs), strict=True):
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, (args, err)
        assert said + RATE_HINT in err, (args, err)
    assert not (tmp_path / "data").exists()  # no node started


async def test_a_get_and_a_put_with_limit_rate_move_at_about_it(tmp_path: Path) -> None:
    """2 MB at 1 MB/s each, the two commands at once: neither ends sooner than its bytes
    take at its own cap (the node has none)."""
    net = PeerNetwork(tmp_path / "nodes")
    try:
        peer = await net.start(replicas=1)
        address = peer.server.node.me.address
        data = hashlib.shake_256(b"limited").digest(2_000_000)
        store_directly(peer, "stored.bin", data, chunk_size=256 * 1024)
        source = tmp_path / "sent.bin"
        source.write_bytes(data[::-1])
        limit = ["--limit-rate", "1M", "--node", address]
        started = time.monotonic()
        got, put = await asyncio.gather(
            timed(cli(["get", "stored.bin", "-o", str(tmp_path / "got.bin"), *limit])),
            timed(cli(["put", str(source), *limit])),
        )
    finally:
        await net.close()
    for (code, err), seconds in (got, put):
        assert code == 0, err
        assert 1.6 <= seconds < 30, seconds
    assert (tmp_path / "got.bin").read_bytes() == data
    assert time.monotonic() - started < 30


async def timed(run: Awaitable[tuple[int, str]]) -> tuple[tuple[int, str], float]:
    started = time.monotonic()
    result = await run
    return result, time.monotonic() - started
