"""Repair under a cap where the links are the limit: `bench/ratelimit.py`'s second half,
on network namespaces (as root; `tests/system/netns.py`'s harness, as `multisource.py`).

On loopback a get is bound by CPU, and repair takes little from it either way. Here 5 hosts
sit on a bridge, each host's egress capped with tc (`--link`, 100 Mbit/s by default):
three nodes (`--replicas 3`) hold a user's file and `--repair-mib` of other files (put
before the links are capped), the fifth host gets the user's file from all three holders
at once `--rounds` times (the reference: nothing else on the links), then a node on the
fourth host joins and the others push it its share of the files over the same uplinks the
get uses, and the get runs again while that repair goes on (each such get is checked to
overlap repair: the joiner's store grows during it). Once with the ring's
`--max-repair-rate` `--repair-cap`, once without a repair cap (the contrast).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests" / "system"))

from netns import Host, Network, unavailable_reason, wait_for  # noqa: E402

MIB = 1 << 20
FILLER_MIB = 16


def log(message: str) -> None:
    print(f"[ratelimit {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def worker_get(node: str, name: str, out: str) -> None:
    """In the getter's namespace: one get of `name` through `node`; print its seconds."""
    from chordshare.faces.clients import Clients

    async def go() -> float:
        clients = await Clients.open(node)
        try:
            files = clients.files()
            found = await files.find(name)
            started = time.perf_counter()
            await files.get(name, Path(out), found=found)
            return time.perf_counter() - started
        finally:
            await clients.close()

    print(json.dumps(asyncio.run(go())), flush=True)
    os.unlink(out)


def _get(net: Network, getter: Host, node: Host, name: str, work: Path) -> float:
    argv = ["ip", "netns", "exec", getter.ns, sys.executable, str(HERE), "_get"]
    done = subprocess.run(
        [*argv, node.address, name, str(work / "got.bin")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"get failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout))


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, 4 * MIB):
            out.write(os.urandom(min(4 * MIB, size - start)))


def _stored(net: Network, host: Host) -> int:
    return int(net.cli_json(host, "ls", "--node", host.address)["used_bytes"])


def one_ring(args: Any, work: Path, repair_cap: int) -> dict[str, Any]:
    net = Network(work / f"net-{repair_cap}")
    (work / f"net-{repair_cap}").mkdir()
    try:
        return _measure(args, net, work, repair_cap)
    except BaseException:
        log(net.logs())
        raise
    finally:
        left = net.destroy()
        if left:
            log(f"left behind: {left}")


def _measure(args: Any, net: Network, work: Path, repair_cap: int) -> dict[str, Any]:
    net.create(5)
    holders, joiner, getter = net.hosts[:3], net.hosts[3], net.hosts[4]
    extra = {"replicas": 3, "max_repair_rate": repair_cap, "api": "off"}
    net.start_all(hosts=holders, **extra)
    wait_for("a ring of 3", lambda: _ring_of(net, holders[0], 3), timeout=30, interval=0.5)
    user = work / "user.bin"
    if not user.exists():
        _write_random(user, args.links_get_mib * MIB)
    names = ["user.bin"]
    net.cli_json(holders[0], "put", str(user), "--node", holders[0].address, timeout=300)
    filler = work / "filler.bin"
    for i in range(max(1, args.links_repair_mib // FILLER_MIB)):
        _write_random(filler, FILLER_MIB * MIB)
        name = f"filler-{i}.bin"
        net.cli_json(holders[0], "put", str(filler), "--name", name, "--node", holders[0].address)
        names.append(name)

    def all_held() -> None:
        listing = net.cli_json(holders[0], "ls", "--all", "--node", holders[0].address)
        counts = {f["name"]: len(f["holders"]) for f in listing["files"]}
        assert all(counts.get(n) == 3 for n in names), counts

    wait_for("3 copies of every file", all_held, timeout=120, interval=1.0)
    for host in net.hosts:
        net.cap_egress(host, args.link)
    log(f"repair cap {repair_cap or 'none'}: links capped at {args.link}; gets alone")
    alone = [_get(net, getter, holders[0], "user.bin", work) for _ in range(args.rounds)]
    net.configure(joiner, holders[0], **extra)
    net.start(joiner)
    wait_for("repair to reach the joiner", lambda: _grew(net, joiner, 0), timeout=60, interval=0.2)
    during, active = [], []
    for _ in range(args.rounds):
        before = _stored(net, joiner)
        during.append(_get(net, getter, holders[0], "user.bin", work))
        active.append(_stored(net, joiner) > before)
    size = args.links_get_mib * MIB
    return {
        "repair_cap_mb_s": round(repair_cap / 1e6, 3) if repair_cap else "none",
        "get_mib": args.links_get_mib,
        "get_alone_mb_s": [round(size / s / 1e6, 2) for s in alone],
        "get_during_repair_mb_s": [round(size / s / 1e6, 2) for s in during],
        "repair_active_during_each_get": active,
        "joiner_stored_mib_by_then": round(_stored(net, joiner) / MIB, 1),
        "kept_of_alone": round(statistics.median(alone) / statistics.median(during), 4),
    }


def _ring_of(net: Network, host: Host, count: int) -> None:
    assert len(net.ring(host)) == count


def _grew(net: Network, host: Host, than: int) -> None:
    assert _stored(net, host) > than


def over_links(args: Any, repair_cap: int) -> dict[str, Any]:
    """The capped ring and the contrast without a cap; {"skipped": why} when this machine
    cannot make namespaces (not root, no `ip`)."""
    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="chordshare-ratelimit-links-") as tmp:
        work = Path(tmp)
        report: dict[str, Any] = {"hosts": 5, "egress_cap": args.link}
        report["capped"] = one_ring(args, work, repair_cap)
        if not args.skip_uncapped:
            report["uncapped"] = one_ring(args, work, 0)
    return report


if __name__ == "__main__" and sys.argv[1:2] == ["_get"]:
    worker_get(*sys.argv[2:5])
