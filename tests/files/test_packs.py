"""Packs: every small file of a tree lies in exactly one pack, in path order and end to end
from offset 0; a larger file is put alone; no pack holds more than PACK_BYTES; a pack is
closed only when the next file would not fit. A pack's name is known from every other."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chordshare.files import packs
from chordshare.files.folders import Found
from chordshare.files.packs import (
    LAST_PACK,
    PACK_BYTES,
    SMALL_FILE,
    PackPlan,
    is_pack_name,
    pack_name,
    plan_packs,
)

MiB = 1024 * 1024
PATHS = st.text("abc/", min_size=1, max_size=6)
# Sizes around the real limits, and anywhere up to a few MiB.
SIZES = st.one_of(
    st.sampled_from([0, 1, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1]),
    st.integers(0, 3 * MiB),
)


@st.composite
def a_tree(draw: st.DrawFn, sizes: st.SearchStrategy[int] = SIZES) -> list[Found]:
    paths = draw(st.lists(PATHS, max_size=150, unique=True))
    return [
        Found(p, "dir", 0o755)
        if draw(st.integers(0, 3)) == 0
        else Found(p, "file", 0o644, draw(sizes))
        for p in paths
    ]


def check_plan(found: list[Found], plan: PackPlan, small: int, most: int) -> None:
    files = sorted((f for f in found if f.kind == "file"), key=lambda f: f.path)
    packed = [slot.item for slots in plan.packs for slot in slots]
    # Each file exactly once, packed iff it is small; the packs in path order.
    assert sorted([*packed, *plan.alone], key=lambda f: f.path) == files
    assert packed == [f for f in files if f.size <= small]
    assert list(plan.alone) == [f for f in files if f.size > small]
    for index, slots in enumerate(plan.packs):
        assert slots, "no pack is empty"
        offset = 0
        for slot in slots:  # end to end from offset 0
            assert slot.offset == offset
            offset += slot.item.size
        assert plan.pack_size(index) == offset <= most
        if index + 1 < len(plan.packs):  # closed only when the next file does not fit
            assert offset + plan.packs[index + 1][0].item.size > most


@given(a_tree())
@example([Found("a", "file", 0o644, SMALL_FILE), Found("b", "file", 0o644, SMALL_FILE + 1)])
def test_small_files_are_packed_in_path_order_and_larger_ones_alone(found: list[Found]) -> None:
    check_plan(found, plan_packs(found), SMALL_FILE, PACK_BYTES)


@given(
    st.integers(0, 40).flatmap(
        lambda small: st.tuples(
            st.just(small), st.integers(max(small, 1), 120), a_tree(st.integers(0, 60))
        )
    )
)
def test_packs_fill_up_to_their_limit_whatever_the_limits(
    limits: tuple[int, int, list[Found]],
) -> None:
    small, most, found = limits
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packs, "SMALL_FILE", small)
        patch.setattr(packs, "PACK_BYTES", most)
        plan = plan_packs(found)
    check_plan(found, plan, small, most)


def test_a_pack_is_full_at_exactly_pack_bytes() -> None:
    per_pack = PACK_BYTES // SMALL_FILE
    found = [Found(f"{i:04}", "file", 0o644, SMALL_FILE) for i in range(per_pack + 1)]
    plan = plan_packs(found)
    assert [len(p) for p in plan.packs] == [per_pack, 1]
    assert plan.pack_size(0) == PACK_BYTES and plan.pack_size(1) == SMALL_FILE
    empty = plan_packs([Found("e", "file", 0o644, 0), Found("d", "dir", 0o755)])
    assert [[s.item.path for s in p] for p in empty.packs] == [["e"]] and not empty.alone


FOLDER = st.text(st.characters(codec="utf-8", exclude_characters="/\n"), min_size=1).map(
    lambda t: "d/" + t
)


@given(FOLDER, st.integers(0, LAST_PACK))
def test_a_pack_name_is_known_as_one(folder: str, index: int) -> None:
    assert is_pack_name(pack_name(folder, index))
    assert not is_pack_name(folder) and not is_pack_name(folder + ".chordshare-folder")


@pytest.mark.parametrize(
    "name",
    [
        "x.chordshare-pack-01",
        ".chordshare-pack-1",
        "x/.chordshare-pack-1",  # a file ".chordshare-pack-1" of folder x
        "x.chordshare-pack-1/y",
        "x.chordshare-pack-",
        "x.chordshare-pack-1\n",
        "x.chordshare-pack-1x",
        "x.chordshare-pack--1",
        f"x.chordshare-pack-{LAST_PACK + 1}",
        "x.chordshare-packs-1",
    ],
)
def test_a_lookalike_is_not_a_pack_name(name: str) -> None:
    assert not is_pack_name(name)
