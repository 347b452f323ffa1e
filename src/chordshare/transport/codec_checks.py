"""The checks the file codecs make of what a peer sent: each raises ValueError naming the
problem (the server refuses with INVALID_ARGUMENT, the client reports a garbled reply)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from chordshare.files.manifest import DIGEST_BYTES
from chordshare.transport.limits import MAX_TEXT


def check_digest(data: bytes, what: str) -> bytes:
    """Return data as bytes if it is a SHA-256 digest, else raise ValueError naming `what`."""
    if len(data) != DIGEST_BYTES:
        raise ValueError(f"{what} must be a SHA-256 digest ({DIGEST_BYTES} bytes), got {len(data)}")
    return bytes(data)


def required(parent: object, field: str, what: str) -> None:
    if not parent.HasField(field):  # type: ignore[attr-defined]
        raise ValueError(f"{what} without its {field}")


def finite(value: float, what: str) -> float:
    # NaN compares false with everything and infinity beats every version: either would
    # make a file impossible to replace or remove.
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


def short(text: str, what: str) -> str:
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what} is at most {MAX_TEXT} characters, got {len(text)}")
    return text


def at_most(items: Sequence[object], most: int, what: str) -> None:
    if len(items) > most:
        raise ValueError(f"at most {most} {what} in one request, got {len(items)}")
