"""Where things live on the ring: the keys of names, words and contents, and which nodes
hold a key's copies. Pure functions of the identifier space."""

from __future__ import annotations

from chordshare.ids import IdSpace

DEFAULT_REPLICAS = 3


def file_key(space: IdSpace, name: str) -> int:
    """A file lives on successor(hash(name)) and the k-1 nodes after it."""
    return space.hash(name)


def word_index_key(word: str) -> str:
    return f"word:{word}"


def prefix_index_key(prefix: str) -> str:
    """Names with a word that begins with prefix (and is longer)."""
    return f"prefix:{prefix}"


def content_index_key(sha256: bytes) -> str:
    return f"sha256:{sha256.hex()}"


# Hex digits of a content hash its short-prefix records are kept under: a unique prefix of
# at least this many digits finds a file (as tables show hashes cut short).
CONTENT_PREFIX_DIGITS = 8


def content_prefix_key(hex_prefix: str) -> str:
    return f"sha256-prefix:{hex_prefix[:CONTENT_PREFIX_DIGITS]}"


def index_key(space: IdSpace, record_key: str) -> int:
    """Index records are found under the hash of their key ("word:report", "sha256:…").
    The prefixes keep a word from sharing a key with a file of the same name."""
    return space.hash(record_key)
