"""A set of addresses a seeded simulation can choose from at random, in O(1)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator


class AddressSet:
    """A set of addresses with O(1) add, remove and seeded random choice.

    Why not a `set`: choosing from a set means sorting it first (its order depends on string
    hashing, which changes between processes), and sorting 10,000 addresses per join is what
    made building large rings slow.
    """

    def __init__(self, items: Iterable[str] = ()) -> None:
        self._items: list[str] = []
        self._index: dict[str, int] = {}
        for item in items:
            self.add(item)

    def add(self, item: str) -> None:
        if item not in self._index:
            self._index[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: str) -> None:
        i = self._index.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):  # move the last item into the hole
            self._items[i] = last
            self._index[last] = i

    def choice(self, rng: random.Random) -> str:
        return self._items[rng.randrange(len(self._items))]

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))  # a copy: callers may change the set while iterating
