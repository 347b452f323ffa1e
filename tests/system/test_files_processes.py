"""System tests of file sharing: `chordshare node` processes on loopback, driven through the
CLI (`put`, `get`, `search`, `ls`, `rm`) as a user would, with kill -9 of holders during a
get, of an owner after a put, and of a node in the middle of a put; restarts on the same
data directory; a directory shared in place."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CLI, Processes, api_url, cli_json, eventually, run_cli, walk_ring
from required import unavailable

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(90)]

MIB = 1024 * 1024


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Processes:
    group = Processes(tmp_path)
    request.addfinalizer(group.cleanup)
    return group


def make_file(path: Path, size: int, seed: int = 0) -> bytes:
    """Reproducible bytes, every MiB different (identical chunks would be stored once),
    written a MiB at a time."""
    whole = hashlib.sha256()
    with path.open("wb") as out:
        for index in range(0, size, MIB):
            block = hashlib.shake_256(f"{seed}-{index}".encode()).digest(min(MIB, size - index))
            out.write(block)
            whole.update(block)
    return whole.digest()


def ring_of(procs: Processes, size: int) -> list[str]:
    first = procs.start()
    procs.start_many(size - 1, join=first.address)
    addresses = [n.address for n in procs.nodes]
    eventually(lambda: _ring_has(addresses[0], size), 20, interval=0.2)
    return addresses


def _ring_has(address: str, size: int) -> None:
    assert len(walk_ring(address)) == size


def holders(address: str, name: str) -> list[str]:
    listing = cli_json("ls", "--all", "--node", address)
    return next((f["holders"] for f in listing["files"] if f["name"] == name), [])


def expect_copies(address: str, name: str, count: int, timeout: float = 30.0) -> list[str]:
    def check() -> list[str]:
        found = holders(address, name)
        assert len(found) == count, f"{name} on {found}"
        return found

    return eventually(check, timeout, interval=0.3)


def test_put_on_a_get_from_d_from_several_holders(procs: Processes, tmp_path: Path) -> None:
    a, _, _, d = ring_of(procs, 4)
    digest = make_file(tmp_path / "q3-report.pdf", 24 * MIB + 17)
    put = cli_json("put", str(tmp_path / "q3-report.pdf"), "--node", a)
    assert put["sha256"] == digest.hex() and put["size"] == 24 * MIB + 17
    expect_copies(a, "q3-report.pdf", 3)

    got = cli_json("get", "q3-report.pdf", "-o", str(tmp_path / "out.pdf"), "--node", d)
    assert hashlib.sha256((tmp_path / "out.pdf").read_bytes()).digest() == digest
    assert got["sha256"] == digest.hex() and got["size"] == 24 * MIB + 17
    serving = [s for s in got["sources"] if s["bytes"] > 0]
    assert len(serving) >= 2, got["sources"]
    assert sum(s["bytes"] for s in got["sources"]) == got["size"]

    found = eventually(lambda: _search_hit(d, "report"), 15, interval=0.3)
    assert found == ["q3-report.pdf"]
    by_content = cli_json(
        "get", f"sha256:{digest.hex()}", "-o", str(tmp_path / "again"), "--node", a
    )
    assert by_content["name"] == "q3-report.pdf"
    assert (tmp_path / "again").read_bytes() == (tmp_path / "out.pdf").read_bytes()

    assert run_cli("rm", "q3-report.pdf", "--node", d).code == 0
    expect_copies(a, "q3-report.pdf", 0)
    missing = run_cli("get", "q3-report.pdf", "--node", a)
    assert missing.code == 2 and "no file named 'q3-report.pdf'" in missing.stderr


def _search_hit(address: str, word: str) -> list[str]:
    names = [f["name"] for f in cli_json("search", word, "--node", address)["files"]]
    assert names, f"nothing found for {word}"
    return names


@pytest.mark.parametrize("fault", ["kill -9", "SIGSTOP"])
def test_a_holder_killed_or_frozen_in_the_middle_of_a_get(
    procs: Processes, tmp_path: Path, fault: str
) -> None:
    """The get completes with identical bytes from the other holders. A frozen holder's
    stream (read in a thread) is given up on, not waited for."""
    a, *_ = ring_of(procs, 4)
    digest = make_file(tmp_path / "big.iso", 160 * MIB, seed=1)
    cli_json("put", str(tmp_path / "big.iso"), "--node", a)
    copies = expect_copies(a, "big.iso", 3)
    gateway = next(n for n in procs.nodes if n.address not in copies)
    victim = next(n for n in procs.nodes if n.address == copies[1])
    out = tmp_path / "got.iso"
    get = subprocess.Popen(
        [*CLI, "get", "big.iso", "-o", str(out), "--node", gateway.address, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        part = out.with_name(out.name + ".part")
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size > 0) and get.poll() is None:
            assert time.monotonic() < deadline, "the get never started writing"
            time.sleep(0.002)
        running_at_kill = get.poll() is None
        if fault == "kill -9":
            victim.kill9()
        else:
            victim.freeze()
        stdout, stderr = get.communicate(timeout=60)
    finally:
        if get.poll() is None:
            get.kill()
    assert running_at_kill, "the get finished before the holder died: make the file bigger"
    assert get.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["sha256"] == digest.hex()
    assert hashlib.sha256(out.read_bytes()).digest() == digest


def test_kill_9_of_the_owner_then_repair(procs: Processes, tmp_path: Path) -> None:
    addresses = ring_of(procs, 5)
    digest = make_file(tmp_path / "movie.mkv", 3 * MIB + 5, seed=2)
    cli_json("put", str(tmp_path / "movie.mkv"), "--node", addresses[0])
    expect_copies(addresses[0], "movie.mkv", 3)
    owner = cli_json("lookup", "movie.mkv", "--node", addresses[0])["owner"]["address"]
    next(n for n in procs.nodes if n.address == owner).kill9()
    asker = next(a for a in addresses if a != owner)
    got = cli_json("get", "movie.mkv", "-o", str(tmp_path / "m"), "--node", asker)
    assert got["sha256"] == digest.hex()
    assert owner not in {s["address"] for s in got["sources"] if s["bytes"] > 0}
    copies = expect_copies(asker, "movie.mkv", 3, timeout=40)
    assert owner not in copies


def test_crash_during_a_put_lists_and_serves_nothing_partial(
    procs: Processes, tmp_path: Path
) -> None:
    node = procs.start(extra=["--data-dir", str(tmp_path / "keep")])
    make_file(tmp_path / "huge.bin", 256 * MIB, seed=3)
    put = subprocess.Popen(
        [*CLI, "put", str(tmp_path / "huge.bin"), "--node", node.address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        chunks = tmp_path / "keep" / "chunks"
        deadline = time.monotonic() + 30
        while sum(1 for p in chunks.glob("??/*")) < 3:
            assert put.poll() is None, "the put ended before the node was killed"
            assert time.monotonic() < deadline, "the put never started storing"
            time.sleep(0.005)
        node.kill9()
        assert put.wait(30) != 0
    finally:
        if put.poll() is None:
            put.kill()
    again = procs.start(extra=["--data-dir", str(tmp_path / "keep")])
    listing = cli_json("ls", "--node", again.address)
    assert listing["files"] == [] and listing["used_bytes"] == 0
    assert list(chunks.glob("??/*")) == []  # the partial chunks were collected
    missing = run_cli("get", "huge.bin", "--node", again.address)
    assert missing.code == 2 and "no file named" in missing.stderr


def test_restart_on_the_same_data_dir_keeps_files(procs: Processes, tmp_path: Path) -> None:
    data = tmp_path / "persist"
    node = procs.start(extra=["--data-dir", str(data)])
    digest = make_file(tmp_path / "keep.txt", 4096, seed=4)
    cli_json("put", str(tmp_path / "keep.txt"), "--node", node.address)
    in_use = run_cli("node", "--bind", "127.0.0.1:0", "--data-dir", str(data))
    assert in_use.code == 2 and "in use by another running node" in in_use.stderr
    node.kill9()
    again = procs.start(extra=["--data-dir", str(data)])
    assert [f["name"] for f in cli_json("ls", "--node", again.address)["files"]] == ["keep.txt"]
    got = cli_json("get", "keep.txt", "-o", str(tmp_path / "back"), "--node", again.address)
    assert got["sha256"] == digest.hex()


def test_share_a_directory_in_place(procs: Processes, tmp_path: Path) -> None:
    shared = tmp_path / "shared_files"
    shared.mkdir()
    digest = make_file(shared / "holiday-photos.zip", 5 * MIB + 1, seed=5)
    first = procs.start()
    sharer = procs.start(join=first.address, extra=["--share", str(shared)])
    others = procs.start_many(2, join=first.address)
    eventually(lambda: _ring_has(first.address, 4), 20, interval=0.2)
    mine = cli_json("ls", "--node", sharer.address)["files"]
    assert [(f["name"], f["shared"]) for f in mine] == [("holiday-photos.zip", True)]
    assert eventually(lambda: _search_hit(others[0].address, "photos"), 20, interval=0.3) == [
        "holiday-photos.zip"
    ]
    got = cli_json(
        "get", "holiday-photos.zip", "-o", str(tmp_path / "got.zip"), "--node", others[1].address
    )
    assert got["sha256"] == digest.hex()
    assert [s["address"] for s in got["sources"] if s["bytes"]] == [sharer.address]
    # Nothing was copied into the sharer's store: it serves the file where it lies.
    assert cli_json("ls", "--node", sharer.address)["used_bytes"] == 0


def test_bad_input_is_one_line_and_loses_nothing(procs: Processes, tmp_path: Path) -> None:
    node = procs.start(extra=["--max-store", "1MiB", "--scrub-rate", "1M"])
    make_file(tmp_path / "ok.txt", 1000, seed=6)
    make_file(tmp_path / "too-big.bin", 2 * MIB, seed=7)
    cli_json("put", str(tmp_path / "ok.txt"), "--node", node.address)
    cases = {
        ("put", str(tmp_path / "ok.txt"), "--name", "a/../b"): "cannot be '..'",
        ("put", str(tmp_path / "ok.txt"), "--name", ".."): "cannot be '..'",
        ("put", str(tmp_path / "ok.txt"), "--name", "x" * 256): "at most 255 bytes",
        ("put", str(tmp_path / "nope"), "--node", node.address): "no such file",
        ("put", str(tmp_path / "too-big.bin")): "quota",
        ("put", str(tmp_path / "too-big.bin"), "--name", "ok.txt"): "already exists",
        ("get", "missing.txt"): "no file named 'missing.txt'",
        ("get", "sha256:1234"): "64 hex digits",
        ("rm", "missing.txt"): "no file named",
        ("search", "..."): "nothing to search for",
    }
    for args, message in cases.items():
        full = [*args] if "--node" in args else [*args, "--node", node.address]
        result = run_cli(*full)
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for args, message in {
        ("--max-store", "lots"): "is not a size",
        ("--scrub-rate", "fast"): "scrub_rate: 'fast' is not a size",
        ("--share", str(tmp_path / "nowhere")): "not a directory",
    }.items():
        result = run_cli("node", "--bind", "127.0.0.1:0", *args)
        assert result.code == 2 and message in result.stderr, result.stderr
    listing = cli_json("ls", "--node", node.address)
    assert [f["name"] for f in listing["files"]] == ["ok.txt"]
    assert listing["used_bytes"] == 1000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system of its own (tmpfs), mounted for this test and unmounted after."""
    if os.geteuid() != 0:
        unavailable("mounting a small file system needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_get_onto_a_full_disk_is_one_line_and_resumable(
    procs: Processes, tmp_path: Path, small_disk: Path
) -> None:
    node = procs.start()
    digest = make_file(tmp_path / "big.bin", 2 * MIB, seed=8)
    cli_json("put", str(tmp_path / "big.bin"), "--node", node.address)
    result = run_cli("get", "big.bin", "-o", str(small_disk / "big.bin"), "--node", node.address)
    assert result.code == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{small_disk / 'big.bin.part'}: No space left on device" in result.stderr
    assert "get again to resume" in result.stderr
    assert not (small_disk / "big.bin").exists()
    # Elsewhere, with room, the same get works.
    got = cli_json("get", "big.bin", "-o", str(tmp_path / "got.bin"), "--node", node.address)
    assert got["sha256"] == digest.hex()
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).digest() == digest


def test_the_rest_api_of_a_node_process(procs: Processes, tmp_path: Path) -> None:
    import re
    import urllib.request

    node = procs.start(extra=["--api", "127.0.0.1:0"])
    url = eventually(lambda: api_url(node.log()), 10, interval=0.1)
    with urllib.request.urlopen(f"{url}/api/v1/node", timeout=10) as answer:
        assert json.load(answer)["address"] == node.address
    with urllib.request.urlopen(url, timeout=10) as page:
        assert b"chordshare" in page.read()
    taken = re.search(r":(\d+)$", url)
    assert taken is not None
    busy = run_cli("node", "--bind", "127.0.0.1:0", "--api", f"127.0.0.1:{taken[1]}")
    assert busy.code == 2 and "cannot listen there" in busy.stderr, busy.stderr
    bad = run_cli("node", "--bind", "127.0.0.1:0", "--api", "nowhere")
    assert bad.code == 2 and "api: malformed address" in bad.stderr, bad.stderr
    leave = urllib.request.Request(f"{url}/api/v1/node/leave", method="POST")
    token = re.search(r"#token=(\S+)", node.log())  # the node made its own
    assert token is not None
    leave.add_header("Authorization", f"Bearer {token[1]}")
    with urllib.request.urlopen(leave, timeout=10) as answer:
        assert answer.status == 202
    assert node.popen.wait(15) == 0  # left the ring and exited


def test_json_logs_name_the_node_on_every_line(procs: Processes) -> None:
    first = procs.start(extra=["--log-format", "json"])
    procs.start(join=first.address)

    def logged() -> list[dict]:
        lines = [json.loads(line) for line in first.log().splitlines() if line.startswith("{")]
        assert any("joined" in e["message"] or "created" in e["message"] for e in lines)
        return lines

    entries = eventually(logged, 10, interval=0.1)
    assert {e["node"] for e in entries} == {str(first.id)}
    assert all({"ts", "level", "node", "logger", "message"} <= set(e) for e in entries)
