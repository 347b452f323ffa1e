"""Records that others publish periodically (index entries, locators), kept until they
expire: a publisher that died stops being advertised."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Soft records one node keeps for others (per table): what a large network's index needs,
# and a bound on the memory publishers can make it hold.
MAX_SOFT_RECORDS = 500_000


@dataclass
class _SoftRecord:
    """An index entry or locator that lives until `expires` unless published again."""

    value: object
    expires: float


@dataclass
class SoftTable:
    """Records that others publish periodically (index entries, locators): kept in memory,
    dropped when not refreshed, so a publisher that died stops being advertised. At most
    `limit` records are kept: publishers cannot make a node hold unbounded memory."""

    clock: Callable[[], float] = time.monotonic
    limit: int = MAX_SOFT_RECORDS
    _rows: dict[str, dict[str, _SoftRecord]] = field(default_factory=dict)
    _count: int = 0

    def room_for(self, items: Sequence[tuple[str, str]]) -> bool:
        """Whether (key, item) records fit, counting those already here as refreshes. The
        expired ones are dropped first when the table looks full."""
        if self._count + len(items) <= self.limit:
            return True
        self.prune()
        fresh = {(k, i) for k, i in items if i not in self._rows.get(k, {})}
        return self._count + len(fresh) <= self.limit

    def put(self, key: str, item: str, value: object, ttl: float) -> None:
        row = self._rows.setdefault(key, {})
        self._count += item not in row
        row[item] = _SoftRecord(value, self.clock() + ttl)

    def remove(self, key: str, item: str) -> None:
        row = self._rows.get(key)
        if row is not None:
            self._count -= row.pop(item, None) is not None
            if not row:
                del self._rows[key]

    def get(self, key: str) -> list[object]:
        now = self.clock()
        row = self._rows.get(key, {})
        for item in [i for i, r in row.items() if r.expires <= now]:
            self.remove(key, item)
        return [r.value for r in row.values()]

    def prune(self) -> None:
        """Drop every expired record (a key nobody asks about is otherwise kept)."""
        now = self.clock()
        for key, row in list(self._rows.items()):
            for item in [i for i, r in row.items() if r.expires <= now]:
                self.remove(key, item)

    def rows(self) -> dict[str, list[tuple[object, float]]]:
        """Every live record by key, with the seconds it has left."""
        now = self.clock()
        return {
            key: [(r.value, r.expires - now) for r in row.values() if r.expires > now]
            for key, row in self._rows.items()
        }

    def __len__(self) -> int:
        return self._count
