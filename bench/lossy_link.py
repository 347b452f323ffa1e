"""The latency benchmark's lossy-link phase: N `chordshare node` processes, one per network
namespace on a bridge (tests/system/netns.py, the harness of the fault tests), converge into
an ideal ring; then one node's link drops LOSS_PCT % of what it sends (netns `shape`: a
userspace relay in the switch, which takes the node's port off the bridge while it starts,
so the loss begins with a cut of a few tens of milliseconds), and a client in a namespace of
its own (netns_lookups.py) looks random keys up through the other nodes, one after another,
from the moment the loss begins.

The lossy node is alive the whole time, so the true owner of a key is the first node id at
or after it among all the nodes. Skipped, with the reason, where namespaces cannot be made.
Every namespace and process is removed at the end (`Network.destroy`), also on errors and
Ctrl-C.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lookup_stats import Sample, fault_phase
from ring_procs import log

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.ids import IdSpace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "system"))
from netns import PYTHON, Host, NetnsUnavailable, Network, unavailable_reason

DRIVER = Path(__file__).with_name("netns_lookups.py")
LOSS_PCT = 30.0
START_DEADLINE = 120.0
CONVERGE_DEADLINE = 90.0


def driver_argv(client: Host, *args: str) -> list[str]:
    return ["ip", "netns", "exec", client.ns, PYTHON, str(DRIVER), *args]


def ideal_ring(client: Host, hosts: list[Host], space: IdSpace) -> list[NodeRef] | None:
    """The nodes, if every one holds its ideal successors, predecessor and fingers."""
    done = subprocess.run(
        driver_argv(client, "info", ",".join(h.address for h in hosts)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return None
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if any("error" in f for f in found):
        return None
    refs = [NodeRef(f["id"], f["address"]) for f in found]
    ideal = IdealRouting.of(refs, space)

    def refs_of(pairs: list[Any]) -> list[NodeRef | None]:
        return [None if p is None else NodeRef(p[0], p[1]) for p in pairs]

    for ref, f in zip(refs, found, strict=True):
        if refs_of(f["successors"]) != ideal.successors(ref, DEFAULT_SUCCESSORS):
            return None
        if refs_of([f["predecessor"]])[0] != ideal.predecessor(ref):
            return None
        if refs_of(f["fingers"]) != ideal.fingers(ref):
            return None
    return refs


def converge(client: Host, hosts: list[Host], space: IdSpace) -> tuple[list[NodeRef], float]:
    started = time.monotonic()
    while time.monotonic() - started < CONVERGE_DEADLINE:
        refs = ideal_ring(client, hosts, space)
        if refs is not None:
            return refs, time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"the ring in namespaces did not converge in {CONVERGE_DEADLINE} s")


def lookups_under_loss(
    net: Network, client: Host, lossy: Host, entries: list[Host], seed: int, window: float
) -> tuple[list[list[Any]], float, float]:
    """The driver's lookups for `window` seconds from when the loss began, that moment (just
    before the link is reshaped, so the onset is counted from the earliest it can be), and
    how long the reshaping took (the relay running, the loss steady)."""
    args = (",".join(h.address for h in entries), str(seed), str(window))
    driver = subprocess.Popen(
        driver_argv(client, "lookups", *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdin is not None and driver.stdout is not None
        if driver.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the lookup client did not start: {driver.communicate()}")
        began = time.monotonic()
        driver.stdin.write("go\n")
        driver.stdin.flush()
        net.shape(lossy, loss_pct=LOSS_PCT)
        setup = time.monotonic() - began
        out, err = driver.communicate(timeout=window + 60)
        if driver.returncode != 0:
            raise RuntimeError(f"the lookup client failed: {err}")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
    return json.loads(out.strip().splitlines()[-1]), began, setup


def samples_of(rows: list[list[Any]], refs: list[NodeRef], began: float) -> list[Sample]:
    space = IdSpace()
    ideal = IdealRouting.of(refs, space)
    samples = []
    for key, owner, started, took, hops, timeouts, in_node, error in rows:
        true_owner = ideal.owner(key)
        following = ideal.owner((true_owner.id + 1) % space.size).address
        answered = error is None
        samples.append(
            Sample(
                at=started - began,
                latency=took,
                answered=answered,
                correct=answered and owner == true_owner.address,
                hops=hops,
                timeouts=timeouts,
                skipped_owner=answered and owner != true_owner.address and owner == following,
                in_node=in_node,
            )
        )
    return samples


def measure(workdir: Path, nodes: int, window: float, seed: int) -> dict[str, Any]:
    """The report's "lossy_link" phase (or {"skipped": reason})."""
    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason, "target_met": None}
    workdir.mkdir()
    net = Network(workdir)
    try:
        try:
            net.create(nodes + 1)  # the last host is the client's: no node there
        except NetnsUnavailable as err:
            return {"skipped": str(err), "target_met": None}
        hosts, client = net.hosts[:nodes], net.hosts[nodes]
        log(f"lossy link: starting {nodes} nodes in namespaces")
        net.start_all(hosts, ready=START_DEADLINE, api="off")
        refs, converged = converge(client, hosts, IdSpace())
        log(f"lossy link: converged after {converged:.1f} s")
        lossy = random.Random(seed).choice(hosts)
        entries = [h for h in hosts if h is not lossy]
        rows, began, setup = lookups_under_loss(net, client, lossy, entries, seed, window)
    finally:
        left = net.destroy()
        if left:
            log(f"lossy link: left behind: {left}")
    return fault_phase(
        samples_of(rows, refs, began),
        None,
        window=window,
        nodes=nodes,
        loss_pct=LOSS_PCT,
        lossy_node=lossy.address,
        loss_setup_s=round(setup, 3),
        converged_before_s=round(converged, 2),
        cleanup_left=left,
    )
