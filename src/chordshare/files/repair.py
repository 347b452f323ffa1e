"""One round of repair, decided: who is offered which version, and which copies go.

For every name a node holds (tombstones too):
- if the node owns the name's key, it offers the name to the key's other k-1 holders;
- otherwise it offers the name to the key's owner, and once the owner has confirmed that it
  holds this version (or a newer one), drops its own copy if it is not among the k holders.
So keys move to a node that joins, the survivors of a crash restore k copies, and a node
that held a copy it no longer should gives it up, never before the owner holds it.

The runtime learns who holds a key (a lookup, or `RangeMap` for keys in a range it already
learned), hands the answers in, sends the offers and pushes, and hands the confirmations
back for `drops` and `confirmed_holders`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from chordshare.files.messages import FileVersion
from chordshare.ids import between_right


@dataclass(frozen=True, slots=True)
class KeyHolders:
    """A key's owner and the addresses of its k holders, the owner first."""

    owner: str
    holders: tuple[str, ...]


@dataclass
class RepairPlan:
    offers: dict[str, list[FileVersion]] = field(default_factory=dict)  # by address
    # Names held here that belong elsewhere: dropped once their owner (the value) confirms.
    awaiting_owner: dict[str, str] = field(default_factory=dict)


def plan_repair(
    me: str,
    versions: Iterable[FileVersion],
    placement: Mapping[str, KeyHolders | None],
    reached: Mapping[str, Collection[str]] | None = None,
) -> RepairPlan:
    """The offers of one round over `versions`. `placement` says who holds each name's key
    (None: unknown this round, so the name waits for the next). `reached`: holders known to
    have a name's version already (a quick round after a put skips them)."""
    offers: dict[str, list[FileVersion]] = defaultdict(list)
    awaiting: dict[str, str] = {}
    for version in versions:
        where = placement.get(version.name)
        if where is None:
            continue
        if where.owner == me:
            skip = reached.get(version.name, ()) if reached else ()
            for address in where.holders:
                if address != me and address not in skip:
                    offers[address].append(version)
            continue
        offers[where.owner].append(version)
        if me not in where.holders:
            awaiting[version.name] = where.owner
    return RepairPlan(dict(offers), awaiting)


def plan_handoff(
    me: str,
    versions: Iterable[FileVersion],
    placement: Mapping[str, KeyHolders | None],
    successors: Sequence[str],
) -> dict[str, list[FileVersion]]:
    """What a node offers before a graceful leave, by address. A name it is one of the k
    holders of goes to its `successors` (the k nodes after it, which hold its keys once
    it is gone). A copy it should not hold goes to the key's owner only: pushed to the
    successors, an old version would spread to nodes that never held the name. A name
    whose holders are unknown goes to the successors, so that no copy is lost."""
    offers: dict[str, list[FileVersion]] = defaultdict(list)
    for version in versions:
        where = placement.get(version.name)
        if where is None or me in where.holders:
            for address in successors:
                offers[address].append(version)
        else:
            offers[where.owner].append(version)
    return dict(offers)


def drops(
    plan: RepairPlan, confirmed: Collection[tuple[str, str]], kept: Collection[str] = ()
) -> list[str]:
    """The names whose copy goes: held here though not among the k holders, and their
    owner confirmed (address, name) that it holds this node's version or a newer one. A
    copy is never dropped on the strength of a lookup alone: the owner may be unreachable
    or out of room, and this copy the last one. Names in `kept` stay: the owner offered
    them here lately, so it counts this node among their holders (it stands in for one
    that has no room)."""
    return sorted(
        name
        for name, owner in plan.awaiting_owner.items()
        if (owner, name) in confirmed and name not in kept
    )


def stand_ins(
    where: KeyHolders,
    successors: Sequence[str],
    without_room: Collection[str],
    has_room: Callable[[str], bool],
) -> list[str]:
    """Who holds a copy in place of each of a key's holders that has no room for it: the
    next nodes after the k holders (the owner's successor list, in order) that have room.
    When a holder has room again it takes its copy back, and the stand-in's copy goes as
    any copy held outside the k holders does."""
    wanted = sum(1 for address in where.holders if address in without_room)
    chosen: list[str] = []
    for address in successors:
        if len(chosen) == wanted:
            break
        if address not in where.holders and address not in chosen and has_room(address):
            chosen.append(address)
    return chosen


def confirmed_holders(
    me: str, names: Iterable[str], confirmed: Collection[tuple[str, str]]
) -> dict[str, set[str]]:
    """Who holds each name's version, as one full round found out: this node and the
    peers that confirmed it. A holder that died or left confirms nothing, so it stops being
    named as a holder after the next full round."""
    holders = {name: {me} for name in names}
    for address, name in confirmed:
        if name in holders:
            holders[name].add(address)
    return holders


def successor_addresses(me: str, successors: Sequence[str], count: int) -> list[str]:
    """The first `count` other nodes of a successor list, each once."""
    seen: list[str] = []
    for address in successors:
        if address != me and address not in seen:
            seen.append(address)
    return seen[:count]


class RangeMap:
    """Who holds which keys, learned during one round: a lookup names a key's owner, and the
    owner's predecessor bounds the whole range of keys it owns, (predecessor, owner]. Later
    keys in a known range need no lookup."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int, KeyHolders]] = []

    def known(self, key: int) -> KeyHolders | None:
        for start, end, holders in self._ranges:
            if between_right(start, key, end):
                return holders
        return None

    def learn(self, predecessor_id: int | None, owner_id: int, holders: KeyHolders) -> None:
        """Remember an owner's range; one whose predecessor is unknown teaches nothing."""
        if predecessor_id is not None:
            self._ranges.append((predecessor_id, owner_id, holders))


def key_holders(owner: str, successors: Sequence[str], replicas: int) -> KeyHolders:
    """The k holders of a key owned by `owner` whose successor list is `successors`."""
    holders = [owner, *successor_addresses(owner, successors, replicas - 1)]
    return KeyHolders(owner, tuple(holders))
