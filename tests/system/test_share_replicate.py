"""`--share-replicate`: a node that shares a folder in place and also puts its files into the
ring, so that they outlive it. `chordshare node` processes on loopback, driven through the
CLI; the sharer is killed with kill -9. A sharer without the flag uploads nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import Processes, cli_json, eventually, walk_ring

pytestmark = [pytest.mark.processes, pytest.mark.system, pytest.mark.timeout(90)]

MIB = 1024 * 1024


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Processes:
    group = Processes(tmp_path)
    request.addfinalizer(group.cleanup)
    return group


def stored_on(address: str) -> set[str]:
    """The names a node stores (not those it only shares in place)."""
    listing = cli_json("ls", "--node", address)
    return {f["name"] for f in listing["files"] if not f["shared"]}


def test_a_shared_file_put_into_the_ring_outlives_its_sharer(
    procs: Processes, tmp_path: Path
) -> None:
    replicated, plain = tmp_path / "replicated", tmp_path / "plain"
    (replicated / "docs").mkdir(parents=True)
    plain.mkdir()
    data = hashlib.shake_256(b"outlives").digest(3 * MIB + 5)
    (replicated / "docs" / "plan.pdf").write_bytes(data)
    (plain / "diary.txt").write_bytes(b"stays here" * 100)
    first = procs.start()
    others = procs.start_many(2, join=first.address)
    sharer = procs.start(
        join=first.address, extra=["--share", str(replicated), "--share-replicate"]
    )
    keeper = procs.start(join=first.address, extra=["--share", str(plain)])
    rest = [first, *others, keeper]

    def ring_of_five() -> None:
        assert len(walk_ring(first.address)) == 5

    eventually(ring_of_five, 20, interval=0.2)

    def copied() -> list[str]:
        holding = [n.address for n in rest if "docs/plan.pdf" in stored_on(n.address)]
        assert len(holding) >= 2, holding  # k = 3 copies, at most one on the sharer
        return holding

    eventually(copied, 30, interval=0.3)
    sharer.kill9()
    got = cli_json(
        "get", "docs/plan.pdf", "-o", str(tmp_path / "plan.pdf"), "--node", first.address
    )
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert sharer.address not in {s["address"] for s in got["sources"] if s["bytes"]}
    # Sharing in place alone uploads nothing: the diary is on no node's store.
    assert all("diary.txt" not in stored_on(n.address) for n in rest)
