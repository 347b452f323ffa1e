"""Conditional and range requests (RFC 9110 §13 and §14), decided from plain values: given
a file's validators and size and a request's headers, whether it is answered 304, which
bytes it gets, or why its range cannot be served (416). No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal

# An entity tag (RFC 9110 §8.8.3): commas may sit inside the quotes.
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')
_SEPARATOR = " \t,"
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")  # ASCII digits only, unlike \d


@dataclass(frozen=True, slots=True)
class Validators:
    """A file version's validators: its strong entity tag (the content's SHA-256) and when
    it was put."""

    opaque: str  # the entity tag without quotes
    modified: float  # Unix seconds

    @property
    def etag(self) -> str:
        return f'"{self.opaque}"'

    @property
    def last_modified(self) -> str:
        return http_date(self.modified)


def http_date(seconds: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), to the second."""
    return formatdate(int(seconds), usegmt=True)


def _seconds(text: str) -> int | None:
    """The instant an HTTP-date names, or None when it is not one."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return int(when.timestamp()) if when.tzinfo is not None else None


def _opaque_tags(header: str) -> list[str] | None:
    """The opaque part of each entity tag in a list, weak or not; None when the list is
    malformed. Empty list elements are allowed (RFC 9110 §5.6.1.2)."""
    tags: list[str] = []
    position = 0
    for found in _ENTITY_TAG.finditer(header):
        between = header[position : found.start()]
        if between.strip(_SEPARATOR) or (tags and "," not in between):
            return None
        tags.append(found.group(1))
        position = found.end()
    return tags if not header[position:].strip(_SEPARATOR) else None


def none_match(header: str, validators: Validators) -> bool:
    """Whether If-None-Match names the current version: `*`, or a tag equal to the ETag
    under the weak comparison (RFC 9110 §13.1.2, §8.8.3.2: W/ is ignored)."""
    if header.strip() == "*":
        return True
    tags = _opaque_tags(header)
    return tags is not None and validators.opaque in tags


def not_modified(
    validators: Validators, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a GET or HEAD is answered 304 (RFC 9110 §13.2.2): If-None-Match decides when
    present; otherwise If-Modified-Since, when it is a date no earlier than the version."""
    if if_none_match is not None:
        return none_match(if_none_match, validators)
    if if_modified_since is None:
        return False
    since = _seconds(if_modified_since)
    return since is not None and int(validators.modified) <= since


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes start..end-1 of a file of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class RangeNotSatisfiable(Exception):
    """A byte range that is malformed or starts past the end (answered 416)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.message = message
        self.content_range = f"bytes */{size}"


def _span(spec: str, size: int) -> Span | Literal[False] | None:
    """One range-spec: its span, None when it is unsatisfiable, False when malformed."""
    found = _RANGE_SPEC.fullmatch(spec)
    if found is None or found.group(0) == "-":
        return False
    first, last = found.groups()
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        return Span(max(0, size - suffix), size, size) if suffix and size else None
    start = int(first)
    if last and int(last) < start:
        return False
    if start >= size:
        return None
    return Span(start, size if not last else min(int(last) + 1, size), size)


def if_range_holds(if_range: str | None, validators: Validators) -> bool:
    """Whether a Range applies under If-Range (RFC 9110 §13.1.5): absent, or the current
    ETag under the strong comparison, or exactly the Last-Modified date."""
    if if_range is None:
        return True
    text = if_range.strip()
    if text.startswith(('"', "W/")):
        return text == validators.etag
    since = _seconds(text)
    return since is not None and since == int(validators.modified)


def requested_span(range_header: str | None, size: int) -> Span | None:
    """The bytes a Range header asks for: None for the whole file (no Range, a unit other
    than bytes, or several ranges, which RFC 9110 §14.2 lets a server answer whole);
    RangeNotSatisfiable when it is malformed or asks only for bytes past the end."""
    if range_header is None:
        return None
    unit, _, specs_text = range_header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # another unit: ignored (RFC 9110 §14.2)
    specs = [s.strip() for s in specs_text.split(",") if s.strip()]
    spans = [_span(spec, size) for spec in specs]
    if not specs or any(span is False for span in spans):
        raise RangeNotSatisfiable(f"malformed byte range {range_header!r}", size)
    satisfiable = [span for span in spans if span]
    if not satisfiable:
        raise RangeNotSatisfiable(
            f"no byte of the range {range_header!r} is in the file ({size} bytes)", size
        )
    return satisfiable[0] if len(spans) == 1 else None
