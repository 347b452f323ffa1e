"""The repair decisions: who is offered what, which copies go, who is named a holder."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chordshare.files.messages import FileVersion
from chordshare.files.repair import (
    KeyHolders,
    RangeMap,
    confirmed_holders,
    drops,
    key_holders,
    plan_repair,
)
from chordshare.ids import between_right

ME = "n0"
ADDRESSES = st.sampled_from([f"n{i}" for i in range(6)])
NAMES = [f"file{i}" for i in range(6)]


@st.composite
def key_holders_of(draw: st.DrawFn) -> KeyHolders:
    owner = draw(ADDRESSES)
    successors = draw(st.lists(ADDRESSES, max_size=5))
    return key_holders(owner, successors, draw(st.integers(min_value=1, max_value=4)))


PLACEMENT = st.fixed_dictionaries({}, optional={n: st.none() | key_holders_of() for n in NAMES})
VERSIONS = st.lists(
    st.builds(
        lambda n, t: FileVersion(n, t, b"\x01" * 32), st.sampled_from(NAMES), st.floats(0, 9)
    ),
    unique_by=lambda v: v.name,
)


@given(VERSIONS, PLACEMENT, st.dictionaries(st.sampled_from(NAMES), st.sets(ADDRESSES)))
def test_an_owner_offers_to_the_other_holders_and_a_holder_to_the_owner(
    versions: list[FileVersion],
    placement: dict[str, KeyHolders | None],
    reached: dict[str, set[str]],
) -> None:
    plan = plan_repair(ME, versions, placement, reached)
    offered = {(address, v.name) for address, vs in plan.offers.items() for v in vs}
    expected = set()
    for version in versions:
        where = placement.get(version.name)
        if where is None:
            continue
        if where.owner == ME:
            skip = reached.get(version.name, set())
            expected |= {(a, version.name) for a in where.holders if a != ME and a not in skip}
        else:
            expected.add((where.owner, version.name))
    assert offered == expected
    assert ME not in plan.offers
    awaiting = {
        v.name: placement[v.name].owner  # type: ignore[union-attr]
        for v in versions
        if placement.get(v.name) is not None
        and placement[v.name].owner != ME  # type: ignore[union-attr]
        and ME not in placement[v.name].holders  # type: ignore[union-attr]
    }
    assert plan.awaiting_owner == awaiting


@given(VERSIONS, PLACEMENT, st.sets(st.tuples(ADDRESSES, st.sampled_from(NAMES))))
def test_a_copy_goes_only_once_its_owner_confirmed_it(
    versions: list[FileVersion],
    placement: dict[str, KeyHolders | None],
    confirmed: set[tuple[str, str]],
) -> None:
    plan = plan_repair(ME, versions, placement)
    dropped = drops(plan, confirmed)
    for name in dropped:
        where = placement[name]
        assert where is not None and ME not in where.holders
        assert (where.owner, name) in confirmed
    # and every copy that may go does
    assert set(dropped) == {n for n, o in plan.awaiting_owner.items() if (o, n) in confirmed}


def test_a_copy_held_by_a_non_holder_stays_while_the_owner_is_unreachable() -> None:
    version = FileVersion("file0", 1.0, b"\x01" * 32)
    placement = {"file0": KeyHolders("n1", ("n1", "n2", "n3"))}
    plan = plan_repair(ME, [version], placement)
    assert plan.offers == {"n1": [version]}
    assert drops(plan, confirmed=set()) == []
    assert drops(plan, confirmed={("n2", "file0")}) == []  # not the owner's word
    assert drops(plan, confirmed={("n1", "file0")}) == ["file0"]


@given(st.sets(st.sampled_from(NAMES)), st.sets(st.tuples(ADDRESSES, st.sampled_from(NAMES))))
def test_the_holders_named_are_exactly_those_that_confirmed(
    names: set[str], confirmed: set[tuple[str, str]]
) -> None:
    holders = confirmed_holders(ME, names, confirmed)
    assert set(holders) == names
    for name, addresses in holders.items():
        assert addresses == {ME} | {a for a, n in confirmed if n == name}


@given(ADDRESSES, st.lists(ADDRESSES, max_size=6), st.integers(min_value=1, max_value=5))
def test_a_key_has_its_owner_first_and_at_most_k_distinct_holders(
    owner: str, successors: list[str], k: int
) -> None:
    where = key_holders(owner, successors, k)
    assert where.holders[0] == owner == where.owner
    assert len(set(where.holders)) == len(where.holders) <= k
    others = list(dict.fromkeys(a for a in successors if a != owner))
    assert list(where.holders[1:]) == others[: k - 1]


@given(
    st.lists(
        st.tuples(st.integers(0, 63), st.integers(0, 63)).filter(lambda r: r[0] != r[1]),
        max_size=4,
    ),
    st.integers(0, 63),
)
def test_a_range_map_answers_for_a_key_only_inside_a_learned_range(
    ranges: list[tuple[int, int]], key: int
) -> None:
    learned = RangeMap()
    for start, end in ranges:
        learned.learn(start, end, KeyHolders(f"owner{end}", (f"owner{end}",)))
    learned.learn(None, 7, KeyHolders("unbounded", ("unbounded",)))
    answer = learned.known(key)
    inside = [end for start, end in ranges if between_right(start, key, end)]
    if inside:
        assert answer == KeyHolders(f"owner{inside[0]}", (f"owner{inside[0]}",))
    else:
        assert answer is None
