"""Sizes, rates and durations as people write them: `4096`, `500K`, `10GiB`; a rate is a
size per second (`4M`, `1MiB`, `4M/s`); a duration is seconds (`90`, `30m`, `1h`). Plain
text in, numbers out: the node's settings (`config`) and the command line read them, and
the command line never loads pydantic to do it."""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_PER_SECOND = re.compile(r"\s*/\s*s(?:ec(?:ond)?)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
RATE_EXAMPLES = "bytes per second, e.g. 500K, 4M or 1MiB; 0: no limit"


def parse_size(text: str | int) -> int:
    """'500M', '10GiB', '4096' -> bytes; ValueError naming the text otherwise."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 500M, 10GiB)")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    power = _POWERS[unit[:1]]
    return int(number * (1024**power if "i" in unit else 1000**power))


def parse_rate(text: str | int | float) -> int:
    """'4M', '500K', '1MiB', '4M/s' -> bytes per second; 0 is no limit. A negative rate,
    or text that is not a size, is a ValueError that says what a rate looks like."""
    if isinstance(text, bool):  # YAML's `yes`/`no`: not a number of bytes
        raise ValueError(f"{text!r} is not a rate ({RATE_EXAMPLES})")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a rate ({RATE_EXAMPLES})")
        return int(text)
    try:
        return parse_size(_PER_SECOND.sub("", text))
    except ValueError:
        raise ValueError(f"{text!r} is not a rate ({RATE_EXAMPLES})") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float) -> float:
    """'3600', '90s', '30m', '1h', '0.5' -> seconds; ValueError naming the text otherwise."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 90, 30s, 15m, 1h)")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "").lower()]
