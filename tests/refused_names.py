"""One character of each kind the new-name rule refuses, and the code point its refusal
names: for the tests of every face and of the peers."""

from __future__ import annotations

ONE_OF_EACH_KIND = [
    ("\x1b", "U+001B"),  # C0: ESC starts terminal escape sequences
    ("\n", "U+000A"),  # C0: a newline forges log lines
    ("\t", "U+0009"),
    ("\x7f", "U+007F"),  # DEL
    ("\x85", "U+0085"),  # C1: next line
    ("\u202e", "U+202E"),  # bidirectional override
    ("\u2066", "U+2066"),  # bidirectional isolate
    ("\u2028", "U+2028"),  # line separator
]
