"""What a file name may be, and the keys it is found under.

A name is a relative path: one part (`notes.txt`) or several separated by '/'
(`photos/2024/a.jpg`), none of them empty, `.` or `..`, so that a name saved under a
folder always stays inside it. No backslash or NUL anywhere, each part without white space
at its ends, at most 255 bytes of UTF-8 in all.

Two rules on top of that. A new name (a client's put, a face's upload) must be text a
terminal shows as it is: no control characters, no bidirectional controls, no line or
paragraph separators, which could make a listing or a log line lie about what it shows. A
stored name (a lookup, a removal, a tombstone) only has to be something a node can hold:
names stored before control characters were checked stay readable and removable. A peer's
copy must pass the new-name rule unless the peer marks its name `legacy_name`, as every
holder does for the names it holds that the new rule refuses (it can only hold them
because they were stored before the rule).

Where a name becomes a local file, `local_name` is the file name to write: its last part.
"""

from __future__ import annotations

import logging
import re
import time

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Unicode's Bidi_Control characters: they reorder the text that follows them on screen.
_BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_SEPARATORS = {0x2028: "line separator", 0x2029: "paragraph separator"}
# Any character `_unsafe` refuses: one search in C instead of a call per character.
_ANY_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


class BadName(ValueError):
    """A file name that cannot be stored; the message says why, with the name escaped."""

    def __init__(self, problem: str, name: str | None = None) -> None:
        super().__init__(problem if name is None else f"{problem}: {name!r}")
        self.problem = problem


def _unsafe(char: str) -> str | None:
    """What a character the new-name rule refuses is, or None if it is allowed."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "control character"
    if code in _BIDI_CONTROLS:
        return "bidirectional control"
    return _SEPARATORS.get(code)


SEPARATOR = "/"  # between the parts of a name: folders, then the file


def _check(name: str, new: bool) -> str:
    if not name:
        raise BadName("a file name cannot be empty")
    try:
        encoded = name.encode()
    except UnicodeEncodeError:  # lone surrogates: not text any peer could store
        raise BadName("a file name must be valid Unicode text", name) from None
    if len(encoded) > MAX_NAME_BYTES:
        raise BadName(f"a file name is at most {MAX_NAME_BYTES} bytes, got {len(encoded)}")
    for bad, what in (("\\", "'\\'"), ("\0", "NUL")):
        if bad in name:
            raise BadName(f"a file name cannot contain {what}", name)
    if new and (found := _ANY_UNSAFE.search(name)) is not None:
        char = found.group()
        raise BadName(f"a file name cannot contain {_unsafe(char)} U+{ord(char):04X}", name)
    parts = name.split(SEPARATOR)
    if len(parts) == 1:
        _check_part(name, "a file name")
        return name
    if name.startswith(SEPARATOR):
        raise BadName("a file name cannot start with '/': it is a path relative to a folder", name)
    if name.endswith(SEPARATOR):
        raise BadName("a file name cannot end with '/'", name)
    if "" in parts:
        raise BadName("a file name cannot contain '//' (an empty folder name)", name)
    for part in parts:
        _check_part(part, "a part of a file name between '/'", name)
    return name


def _check_part(part: str, what: str, name: str | None = None) -> None:
    """The rules of one part of a name (the whole name when it has one part)."""
    if part in (".", ".."):  # the folder itself and its parent, wherever it is saved
        raise BadName(f"{what} cannot be {part!r}", name)
    if part.strip() != part:
        raise BadName(f"{what} cannot start or end with white space", name if name else part)


def name_parts(name: str) -> list[str]:
    """The parts of a name that passed a rule: its folders, then its file name."""
    return name.split(SEPARATOR)


def local_name(name: str) -> str:
    """The file name a get saves `name` under in a folder: its last part, which can be
    neither empty nor `.` nor `..` and holds no separator. `photos/2024/a.jpg` -> `a.jpg`.
    BadName for a name no node could hold, so nothing else is ever made a local path."""
    return name_parts(check_stored_name(name))[-1]


# `notes.conflict-20261205-142501-1a2b3c4d.txt`: a version of `notes.txt` written apart
# from the one that kept the name, at that UTC time, its SHA-256 beginning with those hex
# digits. Like Syncthing's `.sync-conflict-`, the extension stays last, so the copy opens
# as the file did.
MAX_EXTENSION = 16  # bytes of an extension kept last; a longer "extension" is not one
CONFLICT = re.compile(r"^(?P<stem>.+)\.conflict-\d{8}-\d{6}-[0-9a-f]{8}(?P<ext>\.[^./]*)?$", re.S)


def conflict_name(name: str, version: float, sha256: bytes) -> str:
    """The name a version of `name` written apart from the winning one is kept under: the
    same for every node that holds it. A stem too long for it is cut short."""
    stem, _, ext = name.rpartition(".")
    folder = stem.rpartition(SEPARATOR)[0] + SEPARATOR if SEPARATOR in stem else ""
    if (
        not stem.removeprefix(folder)
        or not ext
        or len(ext.encode()) > MAX_EXTENSION
        or " " in ext
        or SEPARATOR in ext
    ):
        # No extension, or not one: ".bashrc", "v1.2 final", a dot in a folder's name.
        stem, ext = name, ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(max(0.0, version)))
    tail = f".conflict-{stamp}-{sha256.hex()[:8]}" + (f".{ext}" if ext else "")
    room = MAX_NAME_BYTES - len(tail.encode())
    kept = stem.encode()[:room].decode(errors="ignore")
    if kept != stem:  # cut short: no white space before the tail
        kept = kept.rstrip()
    return kept + tail


def conflict_of(name: str) -> str | None:
    """The name a conflict copy was written apart from (`conflict_name`), else None."""
    match = CONFLICT.match(name)
    if match is None:
        return None
    return match["stem"] + (match["ext"] or "")


def check_new_name(name: str) -> str:
    """Return name if a new file may be stored under it, else raise BadName."""
    return _check(name, new=True)


def check_stored_name(name: str) -> str:
    """Return name if a stored file may have it (to look it up or remove it), else raise
    BadName. Control characters pass: older nodes stored such names."""
    return _check(name, new=False)


def is_legacy_name(name: str) -> bool:
    """Whether the new-name rule refuses name: a holder sends it marked legacy_name."""
    try:
        check_new_name(name)
    except BadName:
        return True
    return False


def check_sent_name(name: str, replica: bool, legacy: bool) -> str:
    """The name a put carries: a client's (replica False) must pass the new-name rule and
    cannot be marked legacy; a peer's copy must pass it too unless marked legacy, and is
    refused with a warning otherwise (a peer is not expected to send such a name)."""
    if legacy and not replica:
        raise BadName(
            "only a copy from another holder may mark its name as stored before names were "
            "checked for control characters"
        )
    if legacy:
        return check_stored_name(name)
    try:
        return check_new_name(name)
    except BadName as err:
        if replica:
            log.warning("refused a peer's copy of %r: %s", name, err.problem)
        raise


def accepts_from_peer(name: str, legacy: bool) -> bool:
    """Whether a name a peer offers may be taken (check_sent_name of a replica)."""
    try:
        check_sent_name(name, replica=True, legacy=legacy)
    except BadName:
        return False
    return True


def printable(text: str) -> str:
    """text with every character a terminal would not show as itself escaped (\\xNN,
    \\uNNNN, \\UNNNNNNNN), for printing names that came from the network."""
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def keywords(name: str) -> list[str]:
    """The words a name is indexed under: `q3-report.pdf` -> ['pdf', 'q3', 'report']."""
    return sorted({w.lower() for w in _WORD.findall(name)})


# A search word matches the words it begins. Shorter prefixes than this would gather a large
# share of all names on a few index keys; longer ones add records and find nothing more.
MIN_PREFIX = 3
MAX_PREFIX = 16


def word_prefixes(word: str) -> list[str]:
    """The prefixes a word is also indexed under (not the word itself): `big300` ->
    ['big', 'big3', 'big30']."""
    return [word[:n] for n in range(MIN_PREFIX, min(len(word), MAX_PREFIX + 1)) if n < len(word)]
