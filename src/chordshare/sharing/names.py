"""What a file name may be, and the keys it is found under."""

from __future__ import annotations

import re

MAX_NAME_BYTES = 255
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class BadName(ValueError):
    """A file name that cannot be stored; the message says why."""


def check_name(name: str) -> str:
    """Return name if it can be stored, else raise BadName naming the problem."""
    if not name:
        raise BadName("a file name cannot be empty")
    try:
        encoded = name.encode()
    except UnicodeEncodeError:  # lone surrogates: not text any peer could store
        raise BadName(f"a file name must be valid Unicode text: {name!r}") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise BadName(f"a file name is at most {MAX_NAME_BYTES} bytes, got {len(encoded)}")
    for bad, what in (("/", "'/'"), ("\\", "'\\'"), ("\0", "NUL")):
        if bad in name:
            raise BadName(f"a file name cannot contain {what}: {name!r}")
    if ".." in name:
        raise BadName(f"a file name cannot contain '..': {name!r}")
    if name.strip() != name:
        raise BadName(f"a file name cannot start or end with white space: {name!r}")
    return name


def keywords(name: str) -> list[str]:
    """The words a name is indexed under: `q3-report.pdf` -> ['pdf', 'q3', 'report']."""
    return sorted({w.lower() for w in _WORD.findall(name)})
