"""Publisher keys: what a signature covers, who may change a name, and how the version
decisions keep a name its publisher's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.files.lineage import child_ancestry
from chordshare.files.messages import FileError, FileVersion, OfferAnswer, Refusal
from chordshare.files.names import conflict_name
from chordshare.files.publisher import (
    Claim,
    Signer,
    content_digest,
    fingerprint,
    key_text,
    parse_key_text,
    verifies,
    why_refused,
)
from chordshare.files.versions import (
    Held,
    answer_offer,
    judge_answer,
    judge_put,
    removal_version,
    removes,
)

ALICE, BOB, ADMIN = Signer.generate(), Signer.generate(), Signer.generate()
CONTENT = content_digest(11, 4, [b"\1" * 32, b"\2" * 32, b"\3" * 32])
SHA = b"\7" * 32

names = st.text(st.characters(codec="utf-8", exclude_characters="/\\\0"), min_size=1)
versions = st.floats(min_value=1.0, max_value=2e9, allow_nan=False)


def live(
    signer: Signer | None, version: float = 100.0, name: str = "a.txt", sha: bytes = SHA
) -> FileVersion:
    claim = None if signer is None else signer.sign(name, version, CONTENT)
    return FileVersion(name, version, sha, claim=claim)


def removal(signer: Signer | None, version: float = 200.0, name: str = "a.txt") -> FileVersion:
    claim = None if signer is None else signer.sign(name, version, b"", deleted=True)
    return FileVersion(name, version, b"", True, claim=claim)


@settings(max_examples=30, deadline=None)
@given(names, versions, st.booleans())
def test_a_signature_covers_the_name_the_version_the_bytes_and_the_kind(
    name: str, version: float, deleted: bool
) -> None:
    content = b"" if deleted else CONTENT
    claim = ALICE.sign(name, version, content, deleted)
    assert verifies(claim, name, version, content, deleted)
    assert not verifies(claim, name + "x", version, content, deleted)
    assert not verifies(claim, name, version + 1.0, content, deleted)
    assert not verifies(claim, name, version, content, not deleted)
    if not deleted:
        assert not verifies(claim, name, version, content_digest(11, 4, [SHA] * 3), deleted)
    assert not verifies(Claim(BOB.publisher, claim.signature), name, version, content, deleted)


def test_a_conflict_copy_keeps_the_signature_of_the_version_it_was() -> None:
    claim = ALICE.sign("report.pdf", 100.0, CONTENT)
    aside = conflict_name("report.pdf", 100.0, SHA)
    assert verifies(claim, aside, 100.0, CONTENT, False)


def test_who_may_change_a_name() -> None:
    assert why_refused(None, live(BOB), content=CONTENT) is None  # a new name: anyone's
    assert why_refused(live(None), live(BOB), content=CONTENT) is None  # unsigned: anyone's
    assert why_refused(live(None), live(None)) is None
    assert why_refused(live(ALICE), live(ALICE, 150.0), content=CONTENT) is None
    assert why_refused(removal(ALICE), live(ALICE, 250.0), content=CONTENT) is None
    bob = why_refused(live(ALICE), live(BOB, 150.0), content=CONTENT)
    assert bob is not None and fingerprint(ALICE.publisher) in bob
    assert why_refused(live(ALICE), live(None, 150.0)) is not None
    assert why_refused(live(ALICE), removal(BOB)) is not None
    assert why_refused(removal(ALICE), live(BOB, 250.0), content=CONTENT) is not None
    admins = frozenset({ADMIN.publisher})
    assert why_refused(live(ALICE), removal(ADMIN), admins) is None
    # A signature that does not match what it is on: another version, other bytes.
    stolen = FileVersion("a.txt", 150.0, SHA, claim=live(ALICE).claim)
    assert why_refused(live(ALICE), stolen, content=CONTENT) is not None
    assert why_refused(None, live(ALICE), content=content_digest(1, 1, [SHA])) is not None
    # Where only the version travels (an offer), a put's publisher is checked, not bytes.
    assert why_refused(live(ALICE), stolen) is None


def test_a_signed_put_keeps_the_version_it_signed_if_it_is_newer_than_the_held() -> None:
    held = Held("a.txt", live(ALICE, 100.0, sha=b"\1" * 32), 11)
    offered = live(ALICE, 150.0)
    put = dict(replica=False, replace=True, now=140.0, content=CONTENT)
    assert judge_put(offered, held, **put) == 150.0  # type: ignore[arg-type]
    with pytest.raises(FileError) as behind:
        judge_put(live(ALICE, 90.0), held, **put)  # type: ignore[arg-type]
    assert behind.value.refusal is Refusal.FAILED_PRECONDITION
    assert behind.value.version_floor == 100.0
    with pytest.raises(FileError) as ahead:
        judge_put(live(ALICE, 5000.0), held, **put)  # type: ignore[arg-type]
    assert ahead.value.refusal is Refusal.INVALID_ARGUMENT
    with pytest.raises(FileError) as denied:
        judge_put(live(BOB, 150.0), held, **put)  # type: ignore[arg-type]
    assert denied.value.refusal is Refusal.PERMISSION_DENIED
    with pytest.raises(FileError) as denied:
        judge_put(live(BOB, 150.0), held, **{**put, "replica": True})  # type: ignore[arg-type]
    assert denied.value.refusal is Refusal.PERMISSION_DENIED


def test_a_removal_is_signed_by_the_publisher_and_newer_than_the_held() -> None:
    held = Held("a.txt", live(ALICE, 100.0), 11)
    assert removal_version(held, 140.0, removal(ALICE, 150.0)) == 150.0
    for refused, signed in (
        (Refusal.PERMISSION_DENIED, removal(BOB, 150.0)),
        (Refusal.PERMISSION_DENIED, None),
        (Refusal.FAILED_PRECONDITION, removal(ALICE, 50.0)),
    ):
        with pytest.raises(FileError) as err:
            removal_version(held, 140.0, signed)
        assert err.value.refusal is refused
    unsigned = Held("old.txt", live(None, 100.0, "old.txt"), 11)
    assert removal_version(unsigned, 140.0) == 140.0


@given(versions, versions)
def test_a_removal_never_reaches_past_its_own_version(at: float, of: float) -> None:
    # Its lineage is not signed: a member could make one name any version.
    version = FileVersion("a.txt", of, SHA, ancestry=())
    gone = FileVersion("a.txt", at, b"", True, ancestry=child_ancestry(of, SHA, ()))
    assert removes(gone, version) == (at > of)


def test_an_offer_of_a_version_the_publisher_did_not_sign_is_neither_wanted_nor_applied() -> None:
    mine = {"a.txt": live(ALICE), "b.txt": live(ALICE, name="b.txt")}
    offered = [live(BOB, 150.0), removal(BOB, 300.0, "b.txt")]
    outcome = answer_offer(offered, mine.get)
    assert outcome.answer.wanted == () and outcome.removals == ()
    assert set(outcome.answer.newer) == set(mine.values())
    assert [(v, bool(why)) for v, why in outcome.refused] == [(v, True) for v in offered]
    outcome = answer_offer([removal(ALICE, 300.0, "b.txt")], mine.get)
    assert [r.name for r in outcome.removals] == ["b.txt"] and outcome.refused == ()


def test_a_peers_answer_removes_or_sets_aside_only_what_the_publisher_signed() -> None:
    mine = [live(ALICE), live(ALICE, name="b.txt")]
    forged = OfferAnswer((), (removal(BOB), removal(None, name="b.txt")))
    plan = judge_answer(mine, forged)
    assert plan.removals == () and plan.aside == ()
    signed = OfferAnswer((), (removal(ALICE),))
    assert judge_answer(mine, signed).removals == (removal(ALICE),)


@given(st.binary(min_size=32, max_size=32))
def test_a_public_key_reads_back_from_its_text(raw: bytes) -> None:
    assert parse_key_text(key_text(raw)) == raw


@pytest.mark.parametrize(
    "text", ["", "ed25519:", "ed25519:abc", "rsa:" + "A" * 43, "ed25519:" + "A" * 60, "ed25519:***"]
)
def test_a_malformed_public_key_is_refused_with_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="is not a public key"):
        parse_key_text(text)


def test_a_claim_has_a_key_and_a_signature_of_their_sizes() -> None:
    with pytest.raises(ValueError):
        Claim(b"\1" * 31, b"\2" * 64)
    with pytest.raises(ValueError):
        Claim(b"\1" * 32, b"")
