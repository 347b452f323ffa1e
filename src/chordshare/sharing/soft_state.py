"""The index records and locators others publish to a node: soft state that lives until
it expires unless published again (`files.soft_table`)."""

from __future__ import annotations

from collections.abc import Sequence

from chordshare.files.messages import FileError, IndexEntry, IndexRecord, Locator, Refusal
from chordshare.files.soft_table import SoftTable


class SoftState:
    def __init__(self) -> None:
        self.index = SoftTable()
        self.locators = SoftTable()

    async def publish_index(
        self, records: Sequence[IndexRecord], ttl: float, remove: bool = False
    ) -> None:
        if not remove:
            _refuse_unless_room(self.index, [(r.key, r.entry.name) for r in records])
        for record in records:
            if remove:
                self.index.remove(record.key, record.entry.name)
            else:
                self.index.put(record.key, record.entry.name, record.entry, ttl)

    async def query_index(self, key: str) -> list[IndexEntry]:
        entries = [e for e in self.index.get(key) if isinstance(e, IndexEntry)]
        return sorted(entries, key=lambda e: e.name)

    async def publish_locators(self, locators: Sequence[Locator], ttl: float) -> None:
        """Keep locators for `ttl` seconds; a ttl of 0 withdraws them (they expire at once,
        on a node of any version)."""
        if ttl <= 0:
            for locator in locators:
                self.locators.remove(locator.manifest.name, locator.address)
            return
        _refuse_unless_room(self.locators, [(loc.manifest.name, loc.address) for loc in locators])
        for locator in locators:
            self.locators.put(locator.manifest.name, locator.address, locator, ttl)

    def sharers(self, name: str) -> list[Locator]:
        """The live locators of name: peers that share it from a folder of theirs."""
        return [loc for loc in self.locators.get(name) if isinstance(loc, Locator)]

    def sharer_addresses(self) -> set[str]:
        """Every peer some live locator here names."""
        return {
            locator.address
            for rows in self.locators.rows().values()
            for locator, _ in rows
            if isinstance(locator, Locator)
        }

    def forget_sharer(self, address: str) -> None:
        """Drop every locator naming `address` (a sharer that is gone)."""
        for name, rows in self.locators.rows().items():
            if any(isinstance(loc, Locator) and loc.address == address for loc, _ in rows):
                self.locators.remove(name, address)


def _refuse_unless_room(table: SoftTable, items: Sequence[tuple[str, str]]) -> None:
    if not table.room_for(items):
        raise FileError(
            Refusal.RESOURCE_EXHAUSTED,
            f"this node keeps at most {table.limit} published records; it has {len(table)}",
        )
