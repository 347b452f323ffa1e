"""A client's guess of who owns a key, from the ring nodes it has met.

A lookup costs O(log N) hops before a put or a get can start; a client that has met the
key's owner before can go to it straight away. The guess is the first node it knows of at
or after the key, which is the owner whenever it knows every node between the key and
that one. It is only ever a guess: the request carries `owner_only`, the node it names
checks the key against its own predecessor and refuses (OUT_OF_RANGE) when it does not own
it, and the client then looks the owner up as it would have without a guess.

Nodes are learnt from lookups' answers and the successor lists a client asks for; a node
that does not answer is forgotten. The oldest learnt are dropped beyond `capacity`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from chordshare.chord.messages import NodeRef

DEFAULT_CAPACITY = 4096


class RouteCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a route cache holds at least one node")
        self.capacity = capacity
        self._ids: list[int] = []  # sorted, for the search
        self._nodes: dict[int, NodeRef] = {}  # by id, oldest learnt first

    def __len__(self) -> int:
        return len(self._ids)

    def nodes(self) -> list[NodeRef]:
        """The nodes known, in ring order."""
        return [self._nodes[i] for i in self._ids]

    def learn(self, nodes: Iterable[NodeRef]) -> None:
        for node in nodes:
            if node.id in self._nodes:
                del self._nodes[node.id]  # seen again: now the newest (and maybe re-addressed)
            else:
                bisect.insort(self._ids, node.id)
            self._nodes[node.id] = node
        while len(self._ids) > self.capacity:
            oldest = next(iter(self._nodes))
            self._drop(oldest)

    def forget(self, node: NodeRef) -> None:
        """Drop node (as known at that address): it did not answer."""
        known = self._nodes.get(node.id)
        if known is not None and known.address == node.address:
            self._drop(node.id)

    def guess(self, key: int) -> NodeRef | None:
        """The first known node at or after key on the ring; None while none is known."""
        if not self._ids:
            return None
        at = bisect.bisect_left(self._ids, key)
        return self._nodes[self._ids[at % len(self._ids)]]

    def _drop(self, node_id: int) -> None:
        del self._nodes[node_id]
        del self._ids[bisect.bisect_left(self._ids, node_id)]
