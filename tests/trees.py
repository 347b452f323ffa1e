"""A local tree as tests compare them: each path's kind, mode bits and bytes."""

from __future__ import annotations

import stat
from pathlib import Path


def tree_of(root: Path) -> dict[str, tuple[bool, int, bytes]]:
    """Every path under root (folders too): whether a folder, its mode bits, its bytes."""
    seen = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        data = b"" if path.is_dir() else path.read_bytes()
        seen[path.relative_to(root).as_posix()] = (path.is_dir(), mode, data)
    return seen
