"""The version decisions: puts, offers and removals, from plain values."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files.messages import FileError, FileVersion, OfferAnswer, Refusal
from chordshare.files.versions import (
    Held,
    OfferVerdict,
    answer_offer,
    judge_answer,
    judge_offer,
    judge_put,
    removal_applies,
    removal_version,
    supersedes,
)

NAME = "report.pdf"
TIMES = st.integers(min_value=0, max_value=20).map(float)
DIGESTS = st.sampled_from([bytes([b]) * 32 for b in range(3)])
LIVE = st.builds(FileVersion, st.just(NAME), TIMES, DIGESTS)
REMOVAL = st.builds(lambda t: FileVersion(NAME, t, b"", deleted=True), TIMES)
VERSIONS = st.one_of(LIVE, REMOVAL)
HELD = st.builds(
    Held,
    st.just(NAME),
    st.none() | LIVE,
    st.none() | st.integers(min_value=0, max_value=10**6),
    st.none() | TIMES,
)


def newest_held(held: Held) -> list[tuple[float, bytes]]:
    known = []
    if held.live is not None:
        known.append((held.live.version, held.live.sha256))
    if held.tombstone is not None:
        known.append((held.tombstone, b""))
    return known


@given(LIVE, HELD)
def test_a_copy_is_stored_only_when_it_beats_what_is_held(offered: FileVersion, held: Held) -> None:
    stored = judge_put(offered, held, replica=True, replace=False, now=100.0)
    beats_live = held.live is None or supersedes(offered, held.live)
    # A removal removes what is older than it: a tie is no removal of it.
    beats_tombstone = held.tombstone is None or offered.version >= held.tombstone
    assert stored == (offered.version if beats_live and beats_tombstone else None)


@given(LIVE, HELD, st.none() | VERSIONS, st.booleans(), TIMES)
def test_a_client_put_stores_above_everything_known_or_is_refused(
    offered: FileVersion, held: Held, elsewhere: FileVersion | None, replace: bool, now: float
) -> None:
    live = held.live
    newer_elsewhere = elsewhere is not None and not elsewhere.deleted
    if newer_elsewhere and (live is None or supersedes(elsewhere, live)):  # type: ignore[arg-type]
        live = elsewhere
    try:
        stored = judge_put(
            offered, held, replica=False, replace=replace, now=now, elsewhere=elsewhere
        )
    except FileError as err:
        assert err.refusal is Refusal.ALREADY_EXISTS
        assert live is not None and live.sha256 != offered.sha256 and not replace
        return
    if live is not None and live.sha256 == offered.sha256:
        assert stored is None  # the same bytes: nothing to store
        return
    assert stored is not None
    known = newest_held(held) + ([(elsewhere.version, b"")] if elsewhere else [])
    assert all(stored > version for version, _ in known)
    assert stored >= max(now, offered.version)


@given(HELD, TIMES)
def test_a_removal_is_newer_than_anything_held(held: Held, now: float) -> None:
    version = removal_version(held, now)
    assert all(version > known for known, _ in newest_held(held))
    assert removal_applies(held, FileVersion(NAME, version, b"", deleted=True))


@given(LIVE, TIMES)
def test_a_removal_older_than_the_live_copy_leaves_it(live: FileVersion, removal: float) -> None:
    held = Held(NAME, live)
    applies = removal_applies(held, FileVersion(NAME, removal, b"", deleted=True))
    assert applies == (removal > live.version)


@given(st.none() | VERSIONS, VERSIONS)
def test_an_offer_is_taken_exactly_when_it_supersedes(
    mine: FileVersion | None, offered: FileVersion
) -> None:
    verdict = judge_offer(mine, offered)
    if mine is None or supersedes(offered, mine):
        assert verdict is (OfferVerdict.REMOVE if offered.deleted else OfferVerdict.WANT)
    elif (mine.version, mine.sha256) == (offered.version, offered.sha256):
        assert verdict is OfferVerdict.SAME
    else:
        assert verdict is OfferVerdict.HOLD_NEWER


@given(st.lists(VERSIONS, min_size=1, max_size=8))
def test_offers_in_any_order_leave_the_newest_version(offers: list[FileVersion]) -> None:
    mine: FileVersion | None = None
    for offered in offers:
        if judge_offer(mine, offered) in (OfferVerdict.WANT, OfferVerdict.REMOVE):
            mine = offered
    assert mine == max(offers, key=lambda v: (v.version, v.sha256))


def test_a_stale_copy_offered_to_a_node_that_removed_the_name_learns_of_the_removal() -> None:
    removal = FileVersion(NAME, 5.0, b"", deleted=True)
    stale = FileVersion(NAME, 3.0, b"\x01" * 32)
    assert judge_offer(removal, stale) is OfferVerdict.HOLD_NEWER
    plan = judge_answer([stale], OfferAnswer(wanted=(), newer=(removal,)))
    assert plan.removals == (removal,)
    assert plan.held == {NAME}


def test_a_refused_name_offered_by_a_peer_is_ignored() -> None:
    offered = FileVersion("bad\x1bname", 1.0, b"\x01" * 32)
    assert judge_offer(None, offered) is OfferVerdict.REFUSE
    legacy = FileVersion("bad\x1bname", 1.0, b"\x01" * 32, legacy_name=True)
    assert judge_offer(None, legacy) is OfferVerdict.WANT


@given(st.lists(st.booleans(), max_size=6), st.sets(st.sampled_from(["x", "y"])))
def test_an_answer_pushes_what_was_offered_and_wanted_and_counts_the_rest_held(
    wants: list[bool], foreign: set[str]
) -> None:
    offered = [FileVersion(f"f{i}", 1.0, b"\x01" * 32) for i in range(len(wants))]
    wanted = {v.name for v, want in zip(offered, wants, strict=True) if want}
    plan = judge_answer(offered, OfferAnswer(tuple(sorted(wanted | foreign)), ()))
    assert set(plan.push) == wanted
    assert plan.held == {v.name for v in offered} - wanted


def test_the_same_bytes_put_again_store_nothing() -> None:
    live = FileVersion(NAME, 2.0, b"\x01" * 32)
    again = FileVersion(NAME, 9.0, b"\x01" * 32)
    assert judge_put(again, Held(NAME, live, 10), replica=False, replace=False, now=9.0) is None


def test_other_bytes_without_replace_are_refused_with_what_is_held() -> None:
    live = FileVersion(NAME, 2.0, b"\x01" * 32)
    other = FileVersion(NAME, 9.0, b"\x02" * 32)
    with pytest.raises(FileError, match="already exists \\(10 bytes, sha256 0101"):
        judge_put(other, Held(NAME, live, 10), replica=False, replace=False, now=9.0)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.none() | VERSIONS, VERSIONS)))
def test_an_offer_is_answered_name_by_name_as_judged(
    rows: list[tuple[str, FileVersion | None, FileVersion]],
) -> None:
    held: dict[str, FileVersion | None] = {}
    offered: list[FileVersion] = []
    for name, mine, version in rows:
        if name in held:
            continue  # one version a name, as a holder offers them
        held[name] = None if mine is None else replace(mine, name=name)
        offered.append(replace(version, name=name))
    outcome = answer_offer(offered, held.__getitem__)
    answer, removals = outcome.answer, outcome.removals
    for version in offered:
        verdict = judge_offer(held[version.name], version)
        assert (version.name in answer.wanted) == (verdict is OfferVerdict.WANT)
        assert (version in removals) == (verdict is OfferVerdict.REMOVE)
        newer = held[version.name] in answer.newer
        assert newer == (verdict is OfferVerdict.HOLD_NEWER)
