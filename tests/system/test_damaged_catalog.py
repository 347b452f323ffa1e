"""A node whose catalog was damaged while it was down, as a user meets it: the start stops
with one line naming the catalog and the remedy (exit 2), whether the file was cut to half
or overwritten with garbage; `--recover-data` then sets it aside and starts, the chunk files
that still hash right stay where they are, and the ring's repair brings the node's files
back, every one of them gettable through it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import START_DEADLINE, NodeProcess, Processes, cli_json, eventually, run_cli

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(180)]

KIB = 1024
# Two files of chunk files (chunks over 64 KiB), one small enough to live in the catalog.
SIZES = {"report.bin": 600 * KIB, "photo.bin": 300 * KIB, "notes.txt": 2 * KIB}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def names_on(address: str) -> set[str]:
    return {f["name"] for f in cli_json("ls", "--node", address)["files"]}


def chunk_files(data_dir: Path) -> dict[Path, tuple[int, bytes]]:
    """Every chunk file, with its inode (a rewritten chunk gets a new one) and bytes."""
    return {
        p: (p.stat().st_ino, p.read_bytes())
        for p in (data_dir / "chunks").rglob("*")
        if p.is_file() and p.parent.name != "tmp"
    }


def refused_start(
    procs: Processes, join: str, bind: str, data_dir: Path, catalog: Path
) -> NodeProcess:
    """Start the node on its damaged data directory; it must stop at once with one line."""
    node = procs.start(join=join, bind=bind, extra=["--data-dir", str(data_dir)], wait=False)
    code = node.popen.wait(START_DEADLINE)
    lines = [line for line in node.log().splitlines() if line.strip()]
    assert code == 2, node.log()
    assert len(lines) == 1, node.log()
    assert f"catalog {catalog} is damaged" in lines[0], lines[0]
    assert "start with --recover-data" in lines[0], lines[0]
    return node


def test_a_damaged_catalog_is_one_line_and_recover_data_brings_the_files_back(
    procs: Processes, tmp_path: Path
) -> None:
    first = procs.start()
    procs.start(join=first.address)
    victim = procs.start(join=first.address)
    data_dir = procs.workdir / "data-2"
    catalog = data_dir / "catalog.sqlite3"
    contents = {}
    for name, size in SIZES.items():
        contents[name] = os.urandom(size)
        (tmp_path / name).write_bytes(contents[name])
        put = run_cli("put", str(tmp_path / name), "--node", first.address, timeout=60)
        assert put.code == 0, put.stderr

    def holds_every_file() -> None:
        assert names_on(victim.address) == set(SIZES)

    eventually(holds_every_file, 30, interval=0.5)  # three nodes, three copies: all of them
    assert victim.terminate() == 0

    catalog_bytes = catalog.read_bytes()
    os.truncate(catalog, len(catalog_bytes) // 2)
    refused_start(procs, first.address, victim.address, data_dir, catalog)
    catalog.write_bytes(os.urandom(len(catalog_bytes)))
    refused_start(procs, first.address, victim.address, data_dir, catalog)
    assert not list(data_dir.glob("*.damaged-*"))  # refused: nothing moved

    # One chunk file rotted too: recovery deletes it and repair brings it again.
    chunks = chunk_files(data_dir)
    rotten = sorted(chunks)[0]
    rotten.write_bytes(b"rot" + chunks[rotten][1][3:])
    recovered = procs.start(
        join=first.address,
        bind=victim.address,
        extra=["--data-dir", str(data_dir), "--recover-data"],
    )
    assert recovered.address == victim.address
    log = recovered.log()
    assert "set aside as catalog.sqlite3.damaged-" in log and "Traceback" not in log, log
    assert len(list(data_dir.glob("catalog.sqlite3.damaged-*"))) == 1

    def holds_every_file_again() -> None:
        assert names_on(recovered.address) == set(SIZES)
        assert hashlib.sha256(rotten.read_bytes()).hexdigest() == rotten.parent.name + rotten.name

    eventually(holds_every_file_again, 60, interval=0.5)
    # The good chunk files were kept as they were (the same inodes): not swept at start.
    now = chunk_files(data_dir)
    for path, (inode, data) in chunks.items():
        if path != rotten:
            assert now.get(path) == (inode, data), path
    (tmp_path / "got").mkdir()
    for name, data in contents.items():
        out = tmp_path / "got" / name
        got = run_cli("get", name, "-o", str(out), "--node", recovered.address, timeout=60)
        assert got.code == 0, got.stderr
        assert out.read_bytes() == data, name
