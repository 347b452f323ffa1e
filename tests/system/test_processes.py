"""System tests: separate `chordshare node` processes on loopback, faults by signals.

The teaching ring of the seed (m = 5, ids 1, 5, 20, 28) is checked through the CLI exactly as
a user would read it; then one node is killed with -9, frozen with -STOP (a host cut off)
and thawed, or told to leave with SIGTERM. A larger ring with hashed ids checks convergence.
Every wait is a bounded poll (`eventually`), and every process is killed at teardown.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from helpers import (
    Processes,
    cli_info,
    cli_lookup,
    cli_ring,
    eventually,
    ideal_owner,
    lookup_owners,
    parallel,
    ring_ids_or_fail,
    rotated,
    walk_ring,
)

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(60)]

BITS = 5
TEACHING_IDS = (20, 28, 5, 1)  # 20 starts the ring; the others join through it in this order
HEAL_DEADLINE = 15.0  # several stabilize (0.5 s) and check_predecessor (1 s) periods
# Nodes probe the peers they suspect every check_predecessor period (1 s); a resumed node
# is trusted again within a few periods, long before its suspicion would age out (10 s).
SUSPICION_DEADLINE = 5.0


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Processes:
    group = Processes(tmp_path)
    request.addfinalizer(group.cleanup)
    return group


@pytest.fixture
def teaching(procs: Processes) -> dict[int, str]:
    """The seed's ring, converged: addresses by id."""
    first = procs.start(node_id=TEACHING_IDS[0], bits=BITS)
    for ident in TEACHING_IDS[1:]:
        procs.start(node_id=ident, bits=BITS, join=first.address)
    addresses = {n.id: n.address for n in procs.nodes}
    expect_ring(addresses, sorted(addresses), in_process=True)
    return addresses


def expect_ring(
    addresses: dict[int, str], ids: list[int], *, in_process: bool = False, timeout: float = 15.0
) -> None:
    """Wait until the walk from every node in `ids` gives exactly `ids`, from that node on."""

    def check() -> None:
        for ident in ids:
            walk = ring_ids_or_fail(addresses[ident]) if in_process else cli_ring(addresses[ident])
            assert walk == rotated(ids, ident), f"ring from {ident}: {walk}"

    eventually(check, timeout, interval=0.2)


def check_lookups(
    addresses: dict[int, str], askers: list[int], keys: range, live: list[int]
) -> float:
    """Every key looked up by `chordshare lookup --id`, from askers in turn, gives the ideal
    owner among `live`; returns the slowest call in seconds."""
    jobs = [(askers[k % len(askers)], k) for k in keys]

    def one(job: tuple[int, int]) -> float:
        asker, key = job
        started = time.monotonic()
        answer = cli_lookup(addresses[asker], key)
        owner = answer["owner"]["id"]
        assert owner == ideal_owner(live, key), f"key {key} from {asker}: owner {owner}"
        return time.monotonic() - started

    return max(parallel(one, jobs))


def test_teaching_ring_through_the_cli(teaching: dict[int, str]) -> None:
    ids = sorted(teaching)
    assert ids == [1, 5, 20, 28]
    walks = parallel(cli_ring, [teaching[i] for i in ids])
    for ident, walk in zip(ids, walks, strict=True):
        assert walk == rotated(ids, ident)

    def fingers_of_1() -> None:
        info = cli_info(teaching[1])
        assert info["bits"] == BITS
        assert [f["start"] for f in info["fingers"]] == [2, 3, 5, 9, 17]
        assert [f["node"]["id"] for f in info["fingers"]] == [5, 5, 5, 20, 20]

    eventually(fingers_of_1, 10.0, interval=0.2)
    check_lookups(teaching, ids, range(2**BITS), ids)


def test_kill_9_heals_around_the_dead_node(procs: Processes, teaching: dict[int, str]) -> None:
    procs.by_id(20).kill9()
    killed_at = time.monotonic()
    live = [1, 5, 28]

    def healed() -> None:
        assert cli_ring(teaching[1]) == [1, 5, 28]
        assert cli_info(teaching[5])["successors"][0]["id"] == 28
        predecessor = cli_info(teaching[28])["predecessor"]
        assert predecessor is not None and predecessor["id"] == 5, predecessor

    eventually(healed, HEAL_DEADLINE, interval=0.2)
    print(f"healed {time.monotonic() - killed_at:.2f} s after kill -9")
    check_lookups(teaching, live, range(6, 21), live)
    expect_ring(teaching, live)


def test_frozen_node_is_routed_around_then_rejoins(
    procs: Processes, teaching: dict[int, str]
) -> None:
    frozen = procs.by_id(5)
    frozen.freeze()
    live = [1, 20, 28]
    # Keys 2..5 were node 5's: its successor 20 answers for them while it hangs.
    slowest = eventually(
        lambda: check_lookups(teaching, live, range(2, 6), live), HEAL_DEADLINE, interval=0.2
    )
    assert slowest < 5.0, f"a lookup took {slowest:.2f} s"
    expect_ring(teaching, live, timeout=HEAL_DEADLINE)
    frozen.thaw()
    expect_ring(teaching, [1, 5, 20, 28], timeout=HEAL_DEADLINE)
    # A node that saw 5 fail skips it as a lookup's final answer until a probe finds it alive.
    eventually(
        lambda: check_lookups(teaching, [1, 5, 20, 28], range(2, 6), [1, 5, 20, 28]),
        SUSPICION_DEADLINE,
        interval=0.5,
    )


def test_sigterm_leaves_gracefully(procs: Processes, teaching: dict[int, str]) -> None:
    leaving = procs.by_id(20)
    assert leaving.terminate() == 0, leaving.log()
    assert "leaving" in leaving.log()
    # The leave notices relink both neighbours at once: the very first walk is right.
    assert cli_ring(teaching[1]) == [1, 5, 28]

    def relinked() -> None:
        # Short deadline: a stabilize reply from 20 that crossed its leave notice may put 20
        # back into 5's list for one period.
        assert cli_info(teaching[5])["successors"][0]["id"] == 28
        predecessor = cli_info(teaching[28])["predecessor"]
        assert predecessor is not None and predecessor["id"] == 5, predecessor

    eventually(relinked, 3.0, interval=0.2)
    check_lookups(teaching, [1, 5, 28], range(6, 21), [1, 5, 28])


RING_SIZE = 16


@pytest.mark.timeout(90)
def test_hashed_ring_of_separate_processes_converges(procs: Processes) -> None:
    started = time.monotonic()
    first = procs.start()
    procs.start_many(RING_SIZE - 1, join=first.address)
    up = time.monotonic() - started
    addresses = {n.id: n.address for n in procs.nodes}
    ids = sorted(addresses)
    assert len(ids) == RING_SIZE

    def every_walk_is_the_ring() -> None:
        for ident in ids:
            walk = [n.id for n in walk_ring(addresses[ident])]
            assert walk == rotated(ids, ident), f"ring from {ident}: {len(walk)} nodes"

    eventually(every_walk_is_the_ring, 30.0, interval=0.5)
    converged = time.monotonic() - started
    rng = random.Random(16)
    size = 2**160
    keys_from = {
        ident: [rng.randrange(size) for _ in range(4)] + [ident, (ident + 1) % size]
        for ident in ids
    }

    def every_lookup_names_the_true_owner() -> None:
        # Right successor lists are not enough: a node whose predecessor pointer is still
        # behind a joiner claims the joiner's keys until the joiner's notify lands.
        for ident, keys in keys_from.items():
            owners = lookup_owners(addresses[ident], keys)
            assert owners == [ideal_owner(ids, k) for k in keys], f"lookups from {ident}"

    eventually(every_lookup_names_the_true_owner, 15.0, interval=0.5)
    # And once through the CLI, as a user would see it.
    assert cli_ring(addresses[ids[3]]) == rotated(ids, ids[3])
    key = rng.randrange(size)
    assert cli_lookup(addresses[ids[7]], key)["owner"]["id"] == ideal_owner(ids, key)
    print(f"{RING_SIZE} processes up in {up:.1f} s, ring converged after {converged:.1f} s")
