"""A ring split in two, both sides writing the same names apart, then one ring again:
nothing acknowledged is lost, both versions of a name written apart stay reachable, and
repair converges with the conflict copies on their own holders."""

from __future__ import annotations

import pytest

from chordshare.sim.file_split import SplitPlan, run_split

SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_split_ring_heals_without_losing_a_version_written_apart(seed: int) -> None:
    report = run_split(SplitPlan(seed=seed))
    assert report["sides_converged"] is True, "a side did not become a ring of its own"
    assert report["ring_converged"] is True, "the two rings did not become one"
    assert report["lost_versions"] == []
    assert report["both_problems"] == []
    assert report["replace_problems"] == []
    assert report["conflict_problems"] == []
    assert report["first_problems"] == []
    assert report["first_violations"] == [] and report["safety_violations"] == 0


def test_the_split_really_writes_apart_and_keeps_conflicts() -> None:
    report = run_split(SplitPlan(seed=0))
    assert report["written_on_both_sides"] > 0
    assert report["replaced_and_removed"] > 0
    assert report["kept_as_conflicts"] > 0  # type: ignore[operator]
    assert report["merges"] > 0, "the rings were joined without a merge"  # type: ignore[operator]
    assert min(report["sides"]) > 3  # type: ignore[type-var]


def test_a_split_run_is_the_same_for_the_same_seed() -> None:
    first, second = run_split(SplitPlan(seed=3)), run_split(SplitPlan(seed=3))
    first.pop("seconds")
    second.pop("seconds")
    assert first == second


def test_a_split_needs_enough_nodes_on_each_side() -> None:
    with pytest.raises(ValueError):
        run_split(SplitPlan(nodes=6, replicas=3))
