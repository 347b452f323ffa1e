"""BitTorrent on the same machine, in the same run: libtorrent moving one file on loopback.

chordshare's get is compared with libtorrent 2.1 ("tuned") moving a 256 MiB file
from one seeder on loopback, verified and flushed. A number measured on another day says
little on a VM whose disk and CPU move by tens of percent from one minute to the next, so
this measures libtorrent here, beside chordshare, the way `references.py` measures raw TCP.

Two processes, as two peers would be: a seeder (one session seeding a torrent per piece
size, all of the same file, which is in the page cache like chordshare's source) and, for
every run, a fresh leecher process. The leecher starts its session first, untimed. Its
clock starts when it connects to the seeder (`peer_connect_alert`) and stops when every
piece has passed its hash check (`torrent_finished_alert`) and the file is fsynced:
verified and flushed, as a chordshare get is. libtorrent makes connections only on its
session tick, so the wait between adding the torrent and connecting is left out, in
libtorrent's favour (a chordshare get is timed from its first call, lookup included);
`from_add` figures count it. The leecher also reports its peak RSS.

Tuning: both sessions start from libtorrent's `high_performance_seed` preset, on loopback
only (no DHT, LSD, UPnP, NAT-PMP or uTP; several connections per IP allowed; no
encryption), with one hashing thread per core and a 100 ms session tick. Also tried on
this 2-core VM, none faster: 4 or 10 disk threads, 5,000 outstanding requests, 50 MB send
buffers, pwrite instead of mmap writes, pieces of 4 and 16 MiB. Torrents are v1 (SHA-1
pieces, what most swarms use) and v2 (SHA-256 Merkle trees, the hash chordshare uses), with
the piece size chordshare's chunk size is.

libtorrent is not a chordshare dependency: `pip install -e '.[bench]'` (or `make bench`)
installs the pinned wheel. Without it `transfer.py` reports this reference as skipped.

    .venv/bin/python bench/libtorrent_ref.py [--size-mib 256] [--piece-kib 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MIB = 1 << 20
VERSIONS = ("v1", "v2")
START_DEADLINE = 30.0
RUN_DEADLINE = 300.0  # a leecher that has not finished by then is reported as a failure


def available() -> str | None:
    """libtorrent's version, or None when it is not installed."""
    try:
        import libtorrent
    except ImportError:
        return None
    return str(libtorrent.__version__)


def settings() -> dict[str, Any]:
    """The session settings of both peers (module docstring: Tuning)."""
    import libtorrent as lt

    tuned = lt.high_performance_seed()
    tuned.update(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "allow_multiple_connections_per_ip": True,
            "hashing_threads": os.cpu_count() or 1,
            # Plain TCP, as the benchmark's gRPC is (no RC4 handshake).
            "out_enc_policy": lt.enc_policy.disabled,
            "in_enc_policy": lt.enc_policy.disabled,
            # Connect and unchoke within 0.1 s instead of 0.5 (the from_add figures).
            "tick_interval": 100,
            "alert_mask": (
                lt.alert_category.status | lt.alert_category.error | lt.alert_category.connect
            ),
        }
    )
    return tuned


def make_torrent(source: Path, piece_size: int, version: str, out: Path) -> Path:
    """A .torrent of source (a single file) with that piece size and hash version."""
    import libtorrent as lt

    flags = lt.create_torrent.v1_only if version == "v1" else lt.create_torrent.v2_only
    torrent = lt.create_torrent(lt.list_files(str(source)), piece_size, flags)
    lt.set_piece_hashes(torrent, str(source.parent))
    out.write_bytes(lt.bencode(torrent.generate()))
    return out


def _wait_for(session: Any, alert_type: type, deadline: float) -> float:
    """Block until session posts an alert of alert_type (raise on a torrent error);
    returns when it was posted, on the perf_counter clock."""
    import libtorrent as lt

    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        session.wait_for_alert(500)
        for alert in session.pop_alerts():
            if isinstance(alert, alert_type):
                return time.perf_counter()
            if isinstance(alert, lt.torrent_error_alert | lt.file_error_alert):
                raise RuntimeError(alert.message())
    raise RuntimeError(f"no {alert_type.__name__} within {deadline:g} s")


def seed(torrents: Sequence[Path], save_path: Path) -> None:
    """Seed every torrent (its data already complete in save_path) until stdin closes;
    prints the listening port once all of them are seeding."""
    import libtorrent as lt

    session = lt.session(settings())
    handles = []
    for torrent in torrents:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(str(torrent))
        params.save_path = str(save_path)
        params.flags |= lt.torrent_flags.seed_mode  # the data is known good: no recheck
        handles.append(session.add_torrent(params))
    give_up = time.monotonic() + START_DEADLINE
    while not all(h.status().is_seeding for h in handles):
        if time.monotonic() > give_up:
            raise RuntimeError("the seeder did not start seeding")
        time.sleep(0.01)
    print(session.listen_port(), flush=True)
    sys.stdin.read()


def leech(torrent: Path, save_path: Path, seeder_port: int) -> dict[str, Any]:
    """Download torrent from the seeder into save_path: seconds and peak RSS."""
    import libtorrent as lt

    session = lt.session(settings())
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(str(torrent))
    params.save_path = str(save_path)
    added = time.perf_counter()
    handle = session.add_torrent(params)
    handle.connect_peer(("127.0.0.1", seeder_port))
    # libtorrent makes the connection on its next session tick (every 500 ms): the clock
    # starts there, so that wait is not counted against it.
    started = _wait_for(session, lt.peer_connect_alert, START_DEADLINE)
    _wait_for(session, lt.torrent_finished_alert, RUN_DEADLINE)
    files = params.ti.files()
    for index in range(files.num_files()):
        fd = os.open(save_path / files.file_path(index), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - started
    size = params.ti.total_size()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "waited_for_tick_s": round(started - added, 3),
        "size": size,
        "peak_rss_mb": round(peak_kib * 1024 / 1e6, 1),
    }


@contextlib.contextmanager
def seeder(torrents: Sequence[Path], save_path: Path) -> Iterator[int]:
    """A seeder process for these torrents; yields its port, kills it on the way out."""
    process = subprocess.Popen(
        [sys.executable, __file__, "seed", str(save_path), *map(str, torrents)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the libtorrent seeder did not start (printed {line!r})")
        yield int(line)
    finally:
        process.kill()
        process.wait(10)


def leech_once(torrent: Path, workdir: Path, seeder_port: int) -> dict[str, Any]:
    """One download in a fresh leecher process, its output deleted afterwards; the
    result carries MB/s (10^6 bytes/s) from the connection and from adding the torrent."""
    target = Path(tempfile.mkdtemp(prefix="lt-leech-", dir=workdir))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "leech", str(torrent), str(target), str(seeder_port)],
            capture_output=True,
            text=True,
            timeout=RUN_DEADLINE + START_DEADLINE,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the libtorrent leecher failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    result["mb_s"] = round(result["size"] / result["seconds"] / 1e6, 1)
    from_add = result["seconds"] + result["waited_for_tick_s"]
    result["mb_s_from_add"] = round(result["size"] / from_add / 1e6, 1)
    return result


class Reference:
    """Torrents of one source file and a seeder for them, for runs interleaved with
    others (`transfer.py`); `close` stops the seeder."""

    def __init__(self, source: Path, piece_sizes: Sequence[int], workdir: Path) -> None:
        self.workdir = workdir
        self.torrents = {
            (piece, version): make_torrent(
                source, piece, version, workdir / f"lt-{piece}-{version}.torrent"
            )
            for piece in piece_sizes
            for version in VERSIONS
        }
        self._stack = contextlib.ExitStack()
        self.port = self._stack.enter_context(seeder(list(self.torrents.values()), source.parent))
        # Warm-up: the seeder's first reads, and the leecher's imports and allocator.
        self.run(piece_sizes[0], VERSIONS[0])

    def run(self, piece_size: int, version: str) -> dict[str, Any]:
        return leech_once(self.torrents[piece_size, version], self.workdir, self.port)

    def close(self) -> None:
        self._stack.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "seed":
        seed([Path(p) for p in sys.argv[3:]], Path(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "leech":
        result = leech(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    version = available()
    if version is None:
        sys.exit("libtorrent is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="chordshare-lt-") as tmp:
        workdir = Path(tmp)
        source = workdir / "seed" / "source.bin"
        source.parent.mkdir()
        with source.open("wb") as out:
            for _ in range(args.size_mib // 4):
                out.write(os.urandom(4 * MIB))
        reference = Reference(source, [args.piece_kib * 1024], workdir)
        try:
            piece = args.piece_kib * 1024
            runs = {v: [reference.run(piece, v) for _ in range(args.repeat)] for v in VERSIONS}
        finally:
            reference.close()
    report = {
        "libtorrent": version,
        "size_mib": args.size_mib,
        "piece_kib": args.piece_kib,
        "unit": "MB/s (10^6 bytes/s)",
        **{
            version: {
                "runs": [r["mb_s"] for r in results],
                "median": statistics.median(r["mb_s"] for r in results),
                "from_add_runs": [r["mb_s_from_add"] for r in results],
                "leecher_peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            }
            for version, results in runs.items()
        },
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
