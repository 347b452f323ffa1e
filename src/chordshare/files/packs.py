"""Packs: a folder's small files travel and rest together.

A file put alone costs the ring a signed put, a commit and two copies on other nodes
whatever its size, so a folder of thousands of small files would be thousands of puts.
Instead, every file of at most `SMALL_FILE` bytes is laid end to end with its neighbours
(in path order) in a **pack** of at most `PACK_BYTES`, an ordinary file stored under
`NAME.chordshare-pack-<n>`; the folder manifest gives each small file its pack, offset,
size and SHA-256. Packs are on keys of their own, so a large folder still spreads over
the ring a pack at a time; larger files stay files of their own under `NAME/path`.
Decisions only: the bytes are read and written by `sharing.folder_packs`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chordshare.files.folders import Found

# A file of at most one chunk (`sharing.chunking.DEFAULT_CHUNK_SIZE`) is as cheap to move
# inside a pack as alone, and far cheaper to put.
SMALL_FILE = 1024 * 1024
# Large enough that a pack moves as fast as one large file; small enough that a folder
# spreads over several owners, and that changing one small file re-sends at most one pack.
PACK_BYTES = 64 * 1024 * 1024
PACK_SUFFIX = ".chordshare-pack-"
# After a folder's name (never empty, never ending in '/'), to the very end: `$` would
# also match before a final newline, which an older stored name may hold.
_PACK_NAME = re.compile(r"[^/]" + re.escape(PACK_SUFFIX) + r"(0|[1-9][0-9]{0,5})\Z")
# The longest pack name a folder can need (for the name-length check of a folder's name).
LAST_PACK = 999_999


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one small file goes: its pack's bytes offset..offset+size."""

    item: Found
    offset: int


@dataclass(frozen=True, slots=True)
class PackPlan:
    packs: tuple[tuple[Slot, ...], ...]  # the small files of each pack, by offset
    alone: tuple[Found, ...]  # the files put on their own

    def pack_size(self, index: int) -> int:
        slots = self.packs[index]
        return slots[-1].offset + slots[-1].item.size if slots else 0


def plan_packs(found: Sequence[Found]) -> PackPlan:
    """Which of a tree's files go into which pack, in path order, and which are put alone."""
    packs: list[tuple[Slot, ...]] = []
    current: list[Slot] = []
    filled = 0
    alone: list[Found] = []
    for item in sorted((f for f in found if f.kind == "file"), key=lambda f: f.path):
        if item.size > SMALL_FILE:
            alone.append(item)
            continue
        if current and filled + item.size > PACK_BYTES:
            packs.append(tuple(current))
            current, filled = [], 0
        current.append(Slot(item, filled))
        filled += item.size
    if current:
        packs.append(tuple(current))
    return PackPlan(tuple(packs), tuple(alone))


def pack_name(folder: str, index: int) -> str:
    """The name pack `index` of folder `folder` is stored under."""
    return f"{folder}{PACK_SUFFIX}{index}"


def is_pack_name(stored: str) -> bool:
    """Whether a stored name is one of a folder's packs (shown as part of its folder)."""
    return _PACK_NAME.search(stored) is not None
