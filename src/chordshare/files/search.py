"""Finding files by what a person remembers of them: words of a name or how they begin, and
a content hash or its first digits. Plain decisions: the index records a file publishes, and
what a query asks and keeps of them; the records come from the keys' owners, one O(log N)
lookup a key, never from a scan of the network."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

from chordshare.files.manifest import Manifest
from chordshare.files.messages import IndexEntry, IndexRecord
from chordshare.files.names import MAX_PREFIX, MIN_PREFIX, keywords, printable, word_prefixes
from chordshare.files.placement import (
    CONTENT_PREFIX_DIGITS,
    content_index_key,
    content_prefix_key,
    prefix_index_key,
    word_index_key,
)

CONTENT_PREFIX = "sha256:"
FULL_DIGITS = 64


def index_records(manifest: Manifest) -> list[IndexRecord]:
    """A file's records: its words, their prefixes, its hash and the hash's short prefix."""
    return entry_records(IndexEntry(manifest.name, manifest.size, manifest.sha256))


def entry_records(entry: IndexEntry) -> list[IndexRecord]:
    """The records of a name with that size and SHA-256."""
    keys = _word_keys(entry.name)
    keys.append(content_index_key(entry.sha256))
    keys.append(content_prefix_key(entry.sha256.hex()))
    return [IndexRecord(k, entry) for k in keys]


def packed_records(entry: IndexEntry, path: str) -> list[IndexRecord]:
    """The records of a file packed in a folder (`files.packs`), `entry` named NAME/path:
    the words of its path only. The folder's own words find the folder (its manifest's
    records), not each of its thousands of files under one hot key; and a packed file is
    got by its name, never by its content (it has no file of its own to be found by)."""
    return [IndexRecord(key, entry) for key in _word_keys(path)]


def _word_keys(text: str) -> list[str]:
    words = keywords(text)
    keys = [word_index_key(w) for w in words]
    keys += sorted({prefix_index_key(p) for w in words for p in word_prefixes(w)})
    return keys


def parse_content_address(target: str) -> str | None:
    """`sha256:<hex>` with 8 to 64 hex digits -> those digits in lower case; None for a
    plain name; ValueError if malformed."""
    if not target.startswith(CONTENT_PREFIX):
        return None
    digits = target[len(CONTENT_PREFIX) :].lower()
    if not (
        CONTENT_PREFIX_DIGITS <= len(digits) <= FULL_DIGITS
        and all(c in string.hexdigits for c in digits)
    ):
        raise ValueError(
            f"{target!r}: a content address is sha256: and {CONTENT_PREFIX_DIGITS} to "
            f"{FULL_DIGITS} hex digits of the file's SHA-256"
        )
    return digits


def content_query_key(digits: str) -> str:
    """The record key that lists the files whose hash begins with `digits`."""
    if len(digits) == FULL_DIGITS:
        return content_index_key(bytes.fromhex(digits))
    return content_prefix_key(digits)


def content_candidates(entries: Iterable[IndexEntry], digits: str) -> dict[bytes, list[str]]:
    """The names of each content whose hash begins with `digits`."""
    found: dict[bytes, list[str]] = {}
    for entry in entries:
        if entry.sha256.hex().startswith(digits):
            found.setdefault(entry.sha256, []).append(entry.name)
    return found


def ambiguous(target: str, candidates: dict[bytes, list[str]]) -> str:
    listed = "; ".join(
        f"sha256:{digest.hex()[:16]} ({', '.join(printable(n) for n in sorted(names))})"
        for digest, names in sorted(candidates.items())
    )
    return f"{target} matches {len(candidates)} files: {listed}; give more digits"


def word_query_keys(word: str) -> list[str]:
    """Where the names with a word that is `word`, or begins with it, are listed."""
    keys = [word_index_key(word)]
    if len(word) >= MIN_PREFIX:
        keys.append(prefix_index_key(word[:MAX_PREFIX]))
    return keys


def _match(word: str, name_words: Sequence[str]) -> int:
    """2: the name has the word itself; 1: a word that begins with it; 0: neither."""
    if word in name_words:
        return 2
    if len(word) >= MIN_PREFIX and any(w.startswith(word) for w in name_words):
        return 1
    return 0


def ranked(entries: Iterable[IndexEntry], words: Sequence[str]) -> list[IndexEntry]:
    """The entries whose names match every word, whole-word matches first, then by name."""
    scored = []
    for entry in {e.name: e for e in entries}.values():
        name_words = keywords(entry.name)
        matches = [_match(w, name_words) for w in words]
        if all(matches):
            scored.append((-sum(matches), entry.name, entry))
    return [entry for *_, entry in sorted(scored, key=lambda s: (s[0], s[1]))]
