"""Versions written apart, from plain values: a replace never makes a conflict, two writes
made apart are both kept (the order's winner under the name, the other aside), a removal
removes only what it names, and versions of unknown lineage keep the old order."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chordshare.files.lineage import (
    ANCESTRY_KEPT,
    decode_ancestry,
    descends,
    encode_ancestry,
)
from chordshare.files.messages import FileVersion
from chordshare.files.names import check_new_name, conflict_name, conflict_of
from chordshare.files.versions import (
    Held,
    OfferVerdict,
    ancestry_after,
    concurrent,
    judge_answer,
    judge_offer,
    judge_put,
    keep_aside,
    put_parent,
    removal_applies,
    removes,
    supersedes,
    takes,
)

NAME = "conflict.bin"
DIGESTS = st.binary(min_size=32, max_size=32)


def first_put(version: float, sha256: bytes) -> FileVersion:
    return FileVersion(NAME, version, sha256, ancestry=ancestry_after(None))


def replaced_by(parent: FileVersion, version: float, sha256: bytes) -> FileVersion:
    return FileVersion(NAME, version, sha256, ancestry=ancestry_after(parent))


def removal_of(parent: FileVersion, version: float) -> FileVersion:
    return FileVersion(NAME, version, b"", deleted=True, ancestry=ancestry_after(parent))


def converge(holder: FileVersion | None, offers: list[FileVersion]) -> tuple[FileVersion, list]:
    """A holder taking each offer as a node does; what it ends with, and what it set aside."""
    aside = []
    for offered in offers:
        if holder is None:
            holder = offered
            continue
        verdict = judge_offer(holder, offered)
        if verdict is OfferVerdict.WANT:
            if keep_aside(holder, offered):
                aside.append(holder)
            holder = offered
        elif verdict is OfferVerdict.REMOVE:
            holder = offered
    assert holder is not None
    return holder, aside


@st.composite
def chains(draw: st.DrawFn) -> list[FileVersion]:
    """A first put and the replaces that followed it, one at a time, at rising versions."""
    steps = draw(st.integers(min_value=1, max_value=ANCESTRY_KEPT + 8))
    digests = draw(st.lists(DIGESTS, min_size=steps, max_size=steps))
    chain = [first_put(1.0, digests[0])]
    for index in range(1, steps):
        chain.append(replaced_by(chain[-1], 1.0 + index, digests[index]))
    return chain


@given(chains(), st.randoms(use_true_random=False))
def test_a_line_of_replaces_never_conflicts_and_ends_at_its_last(
    chain: list[FileVersion], rng: random.Random
) -> None:
    offers = list(chain)
    rng.shuffle(offers)
    held, aside = converge(None, offers)
    assert held == chain[-1] and aside == []
    for older in chain[:-1]:
        assert not concurrent(chain[-1], older)
        assert descends(chain[-1].ancestry, older.version, older.sha256)


@given(DIGESTS, DIGESTS, DIGESTS, st.floats(1, 100), st.floats(1, 100))
def test_two_replaces_of_one_base_are_both_kept_whoever_meets_whom(
    base_sha: bytes, left_sha: bytes, right_sha: bytes, left_at: float, right_at: float
) -> None:
    base = first_put(0.5, base_sha)
    left = replaced_by(base, 0.5 + left_at, left_sha)
    right = replaced_by(base, 0.5 + right_at, right_sha)
    if (left.version, left.sha256) == (right.version, right.sha256):
        return
    assert concurrent(left, right)
    winner, loser = (left, right) if supersedes(left, right) else (right, left)
    for holder, offered in ((left, right), (right, left)):
        held, aside = converge(holder, [offered])
        assert held == winner
        assert aside == ([holder] if holder == loser else [])
    # Offered the other way round, the loser's holder learns from the answer.
    plan = judge_answer([loser], judge_offer_answer(winner, loser))
    assert plan.aside == ((loser, winner),)
    plan = judge_answer([winner], judge_offer_answer(loser, winner))
    assert plan.aside == ()


def judge_offer_answer(mine: FileVersion, offered: FileVersion):  # type: ignore[no-untyped-def]
    from chordshare.files.versions import answer_offer

    return answer_offer([offered], lambda name: mine).answer


@given(DIGESTS, DIGESTS, DIGESTS)
def test_first_puts_made_apart_are_both_kept(a: bytes, b: bytes, base: bytes) -> None:
    left, right = first_put(3.0, a), first_put(4.0, b)
    if a == b:
        return
    assert concurrent(left, right) and keep_aside(left, right) and not keep_aside(right, left)
    assert takes(right, left) and not takes(left, right)


@given(DIGESTS, DIGESTS, st.floats(2, 50))
def test_a_removal_removes_what_it_names_and_what_came_before_only(
    base_sha: bytes, other_sha: bytes, later: float
) -> None:
    base = first_put(1.0, base_sha)
    replaced = replaced_by(base, 2.0, other_sha)
    removal = removal_of(replaced, 2.0 + later)
    assert removes(removal, replaced) and removes(removal, base)
    assert removal_applies(Held(NAME, replaced), removal)
    # A replace of the base made apart from the removal is not removed by it, even when
    # older than the removal: both are kept.
    apart = replaced_by(base, 1.5, other_sha[::-1] + b"")
    assert not removes(removal, apart)
    assert not removal_applies(Held(NAME, apart), removal)
    assert judge_offer(apart, removal) is OfferVerdict.HOLD_NEWER
    holder_of_removal = Held(NAME, tombstone=removal.version, tombstone_ancestry=removal.ancestry)
    assert judge_put(apart, holder_of_removal, replica=True, replace=False, now=0.0) == 1.5
    assert judge_offer(holder_of_removal.newest(), apart) is OfferVerdict.WANT
    # The removed line itself stays removed wherever it comes back from.
    assert judge_put(base, holder_of_removal, replica=True, replace=False, now=0.0) is None


@given(DIGESTS, DIGESTS, st.floats(0, 50), st.floats(0, 50))
def test_versions_of_unknown_lineage_keep_the_order(
    a: bytes, b: bytes, at_a: float, at_b: float
) -> None:
    old, new = FileVersion(NAME, at_a, a), FileVersion(NAME, at_b, b)
    assert not concurrent(old, new) and not keep_aside(old, new)
    assert takes(new, old) == supersedes(new, old)
    known = first_put(at_b, b)
    assert not concurrent(old, known) and takes(known, old) == supersedes(known, old)


def test_a_put_after_a_removal_descends_from_it() -> None:
    base = first_put(1.0, b"a" * 32)
    removal = removal_of(base, 2.0)
    held = Held(NAME, tombstone=removal.version, tombstone_ancestry=removal.ancestry)
    parent = put_parent(held)
    assert parent == removal
    again = FileVersion(NAME, 3.0, b"b" * 32, ancestry=ancestry_after(parent))
    # An old copy of the removed version meeting the new put is no conflict: it is older.
    assert not concurrent(again, base) and takes(again, base) and not takes(base, again)


@given(st.lists(st.tuples(st.floats(0, 1e10), st.binary(min_size=8, max_size=8)), max_size=32))
def test_an_ancestry_survives_its_encoding(entries: list[tuple[float, bytes]]) -> None:
    ancestry = tuple(entries)
    assert decode_ancestry(encode_ancestry(ancestry)) == ancestry
    assert decode_ancestry(None) is None and encode_ancestry(None) is None


def test_an_ancestry_of_a_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError):
        decode_ancestry(b"x" * 15)
    with pytest.raises(ValueError):
        decode_ancestry(b"x" * 16 * (ANCESTRY_KEPT + 1))


NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\\\0"),
    min_size=1,
    max_size=60,
).filter(lambda n: n.strip() == n and n not in (".", ".."))


@given(NAMES, st.floats(0, 4e9), DIGESTS)
@example("notes .txt", 0.0, bytes(32))  # a stem that ends in white space keeps it
def test_a_conflict_name_is_a_valid_name_that_says_what_it_came_from(
    name: str, version: float, sha256: bytes
) -> None:
    kept = conflict_name(name, version, sha256)
    assert check_new_name(kept) == kept
    assert conflict_of(kept) == name
    assert kept == conflict_name(name, version, sha256)  # every holder picks the same
    assert sha256.hex()[:8] in kept


def test_a_conflict_name_keeps_the_extension_last() -> None:
    kept = conflict_name("conflict.bin", 1765000000.0, bytes.fromhex("1a2b3c4d" * 8))
    assert kept == "conflict.conflict-20251206-054640-1a2b3c4d.bin"
    assert conflict_of("conflict.bin") is None
    long = conflict_name("x" * 250 + ".txt", 0.0, bytes(32))
    assert len(long.encode()) <= 255 and long.endswith(".txt")
