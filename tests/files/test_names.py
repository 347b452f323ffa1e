"""The two name rules: a new name is text a terminal shows as it is; a stored name only has
to be something a node can hold. Names only the stored rule accepts travel between holders
marked legacy_name, and `printable` shows any name without its control characters. Both
take relative paths (`photos/2024/a.jpg`) whose every part is a name of its own, so that no
name saved under a folder can land outside it."""

from __future__ import annotations

import logging
import os.path
import re
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileVersion, PutHeader
from chordshare.files.names import (
    _ANY_UNSAFE,
    MAX_NAME_BYTES,
    BadName,
    _unsafe,
    accepts_from_peer,
    check_new_name,
    check_sent_name,
    check_stored_name,
    conflict_name,
    conflict_of,
    is_legacy_name,
    local_name,
    name_parts,
    printable,
)
from chordshare.transport import files_codec as codec

# What the new-name rule refuses, written out from Unicode: C0 controls, DEL, C1 controls,
# the Bidi_Control characters, and the line and paragraph separators.
BIDI_CONTROLS = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
REFUSED = [*range(0x20), 0x7F, *range(0x80, 0xA0), *BIDI_CONTROLS, 0x2028, 0x2029]

# One of each kind, with what the refusal calls it.
CLASSES = [
    ("\x1b", "control character U+001B"),
    ("\n", "control character U+000A"),
    ("\t", "control character U+0009"),
    ("\x7f", "control character U+007F"),
    ("\x85", "control character U+0085"),
    ("\u202e", "bidirectional control U+202E"),
    ("\u2066", "bidirectional control U+2066"),
    ("\u061c", "bidirectional control U+061C"),
    ("\u2028", "line separator U+2028"),
    ("\u2029", "paragraph separator U+2029"),
]

refused_chars = st.sampled_from(REFUSED).map(chr)
# Printable characters (letters, marks, numbers, punctuation, symbols, the space) but the
# two path separators.
printable_chars = st.one_of(
    st.characters(categories=["L", "M", "N", "P", "S"], exclude_characters="/\\"), st.just(" ")
)


@pytest.mark.parametrize(("char", "what"), CLASSES, ids=[hex(ord(c)) for c, _ in CLASSES])
def test_a_new_name_with_a_refused_character_is_refused_showing_it_escaped(
    char: str, what: str
) -> None:
    name = f"esc{char}name.txt"
    with pytest.raises(BadName) as refused:
        check_new_name(name)
    message = str(refused.value)
    assert message == f"a file name cannot contain {what}: {name!r}"
    assert char not in message
    # A node that holds the name already can still look it up and remove it.
    assert check_stored_name(name) == name
    assert is_legacy_name(name)


def test_dots_inside_a_name_pass_but_dot_and_dot_dot_are_refused() -> None:
    for name in ("v1..2.txt", "..hidden", "x..", "..."):
        assert check_new_name(name) == check_stored_name(name) == name
    for name in (".", ".."):
        for rule in (check_new_name, check_stored_name):
            with pytest.raises(BadName, match=f"cannot be {name!r}"):
                rule(name)


@given(before=st.text(max_size=20), char=refused_chars, after=st.text(max_size=20))
def test_any_text_with_a_refused_character_is_refused(before: str, char: str, after: str) -> None:
    with pytest.raises(BadName):
        check_new_name(before + char + after)


def test_the_one_search_refuses_exactly_the_characters_the_rule_names() -> None:
    every = "".join(map(chr, range(sys.maxunicode + 1)))  # lone surrogates too
    searched = {ord(found.group()) for found in _ANY_UNSAFE.finditer(every)}
    named = {ord(char) for char in every if _unsafe(char) is not None}
    assert searched == named == set(REFUSED)


@given(st.text(printable_chars, min_size=1, max_size=80))
@example("v1..2.txt")
@example("[bold]x")
def test_any_printable_name_without_separators_is_accepted(name: str) -> None:
    if name.strip() != name or name in (".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        return
    assert check_new_name(name) == name
    assert not is_legacy_name(name)


@given(st.text(st.characters(exclude_categories=()), max_size=40))
@example("esc\x1bname")
@example("a/b")
@example("a/../b")
def test_the_stored_rule_accepts_whatever_the_new_rule_accepts(name: str) -> None:
    try:
        check_new_name(name)
    except BadName:
        assert is_legacy_name(name)
        return
    assert check_stored_name(name) == name


@given(st.text(st.characters(exclude_categories=()), max_size=40))
@example("\x1b[31mred\u202eevil\n\x85\u2028\U000e0001\udc80")
def test_printable_output_is_all_printable(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    assert not any(chr(code) in shown for code in REFUSED)
    shown.encode()  # lone surrogates escaped too


@given(st.text(printable_chars | st.sampled_from("/\\"), max_size=40))
def test_printable_leaves_printable_text_alone(text: str) -> None:
    assert printable(text) == text


def test_printable_escapes_as_python_does() -> None:
    assert printable("a\x1bb") == "a\\x1bb"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable("\U000e0001tag") == "\\U000e0001tag"
    assert printable("back\\slash") == "back\\slash"


def test_a_client_cannot_mark_its_name_as_stored_before_the_rule() -> None:
    with pytest.raises(BadName, match="only a copy from another holder"):
        check_sent_name("fine.txt", replica=False, legacy=True)
    with pytest.raises(BadName, match="U\\+001B"):
        check_sent_name("esc\x1b", replica=False, legacy=False)


def test_a_peer_copy_of_a_refused_name_is_refused_with_a_warning_unless_marked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "forged\nWARNING line"
    with caplog.at_level(logging.WARNING, logger="chordshare.files.names"):
        with pytest.raises(BadName):
            check_sent_name(name, replica=True, legacy=False)
        assert not accepts_from_peer(name, legacy=False)
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.levelno == logging.WARNING
        assert "\n" not in record.getMessage()
        assert repr(name) in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chordshare.files.names"):
        assert check_sent_name(name, replica=True, legacy=True) == name
        assert accepts_from_peer(name, legacy=True)
        # Marked or not, a name no node could hold is refused.
        assert not accepts_from_peer("a/../b", legacy=True)
        assert not accepts_from_peer("/etc/passwd", legacy=True)
    assert caplog.records == []


def test_a_held_version_is_marked_when_only_the_stored_rule_accepts_its_name() -> None:
    assert FileVersion.held("esc\x1b", 1.0, bytes(32)).legacy_name
    assert FileVersion.held("\u202egone", 1.0, b"", deleted=True).legacy_name
    assert not FileVersion.held("plain.txt", 1.0, bytes(32)).legacy_name


@given(legacy=st.booleans(), deleted=st.booleans(), replica=st.booleans())
def test_the_mark_travels_in_put_headers_and_offered_versions(
    legacy: bool, deleted: bool, replica: bool
) -> None:
    manifest = Manifest("esc\x1b", 0, bytes(32), 1, (), 5.0)
    header = PutHeader(manifest, replica=replica, legacy_name=legacy)
    assert codec.put_header_from_pb(codec.put_header_to_pb(header)) == header
    version = FileVersion("esc\x1b", 5.0, b"" if deleted else bytes(32), deleted, legacy)
    assert codec.offer_from_pb(codec.offer_to_pb([version])) == [version]


# Names as relative paths: parts that each pass the rules of a whole name, joined by '/'.

# One part: printable text that is not '.' or '..' and has no white space at its ends.
parts = (
    st.text(printable_chars, min_size=1, max_size=30)
    .map(str.strip)
    .filter(lambda p: p not in ("", ".", ".."))
)
paths = st.lists(parts, min_size=1, max_size=8).map("/".join)
# Where a path goes wrong: an empty part, a dot part, white space at a part's end, a '/' at
# either end of the whole, a backslash.
BROKEN_PARTS = ["", ".", "..", " x", "x ", "x\\y"]


@given(paths)
@example("photos/2024/a.jpg")
@example("v1..2/...x/..y")
def test_a_path_of_good_parts_is_a_good_name(name: str) -> None:
    if len(name.encode()) > MAX_NAME_BYTES:
        with pytest.raises(BadName, match="at most 255 bytes"):
            check_new_name(name)
        return
    assert check_new_name(name) == check_stored_name(name) == name
    assert not is_legacy_name(name)
    assert "/".join(name_parts(name)) == name
    for part in name_parts(name):
        assert check_new_name(part) == part  # every part is a name of its own


@given(
    before=st.lists(parts, max_size=4),
    broken=st.sampled_from(BROKEN_PARTS),
    after=st.lists(parts, max_size=4),
)
@example(before=["a"], broken="..", after=["b"])
@example(before=[], broken="..", after=["etc", "passwd"])
@example(before=["a"], broken="", after=["b"])
def test_a_path_with_a_broken_part_is_refused(
    before: list[str], broken: str, after: list[str]
) -> None:
    name = "/".join([*before, broken, *after])
    for rule in (check_new_name, check_stored_name):
        with pytest.raises(BadName):
            rule(name)


# Room for the slashes: a path at the length limit is refused for its length first.
@given(paths.filter(lambda p: len(p.encode()) <= 253), st.sampled_from(["/", "//"]), st.booleans())
@example("etc/passwd", "/", True)
@example("a", "/", False)
def test_a_path_with_a_slash_at_an_end_is_refused(name: str, slash: str, leading: bool) -> None:
    wrong = slash + name if leading else name + slash
    for rule in (check_new_name, check_stored_name):
        with pytest.raises(BadName, match="start with '/'" if leading else "end with '/'"):
            rule(wrong)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/abs.txt", "cannot start with '/'"),
        ("dir/", "cannot end with '/'"),
        ("a//b", "'//'"),
        ("/", "cannot start with '/'"),
        ("a/./b", "between '/' cannot be '.'"),
        ("a/../b", "between '/' cannot be '..'"),
        ("../up", "between '/' cannot be '..'"),
        ("a/b/..", "between '/' cannot be '..'"),
        ("a /b", "white space"),
        ("a/ b", "white space"),
        ("a\\b/c", "'\\'"),
        ("a/b\x1b", "U+001B"),
        ("d/" + "x" * 254, "at most 255 bytes"),
    ],
)
def test_a_bad_path_is_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(BadName, match=re.escape(why)):
        check_new_name(name)


@given(paths)
def test_a_good_name_saved_under_a_folder_stays_inside_it(name: str) -> None:
    if len(name.encode()) > MAX_NAME_BYTES:
        return
    root = os.path.join(os.sep, "srv", "dest")
    joined = os.path.normpath(os.path.join(root, *name_parts(name)))
    assert joined.startswith(root + os.sep)  # never the folder itself, never above it
    assert os.path.commonpath([root, joined]) == root
    # What a get writes: the last part, a plain file name in the folder asked for.
    saved = local_name(name)
    assert saved == name_parts(name)[-1] and "/" not in saved and saved not in ("", ".", "..")
    assert os.path.dirname(os.path.normpath(os.path.join(root, saved))) == root


@given(st.text(st.characters(exclude_categories=()), max_size=40))
@example("../../etc/passwd")
@example("a/..")
@example("..")
def test_local_name_refuses_what_no_node_could_hold(name: str) -> None:
    try:
        check_stored_name(name)
    except BadName:
        with pytest.raises(BadName):
            local_name(name)
        return
    saved = local_name(name)
    assert saved and "/" not in saved and saved not in (".", "..")


@given(paths, st.floats(0, 4e9), st.binary(min_size=32, max_size=32))
@example("v1.2/readme", 0.0, bytes(32))
@example("photos/.hidden", 0.0, bytes(32))
@example("a" * 100 + "/" + "b" * 120 + ".txt", 0.0, bytes(32))
def test_a_conflict_name_of_a_path_stays_in_its_folder(
    name: str, version: float, sha256: bytes
) -> None:
    if len(name.encode()) > MAX_NAME_BYTES:
        return
    kept = conflict_name(name, version, sha256)
    assert check_new_name(kept) == kept
    folders = name_parts(name)[:-1]
    if len(name.encode()) + 40 <= MAX_NAME_BYTES:  # not cut short
        assert name_parts(kept)[:-1] == folders
        assert conflict_of(kept) == name
