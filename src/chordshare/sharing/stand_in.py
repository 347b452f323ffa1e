"""Copies held in place of holders that have no room: the owner's part of repair.

When one of a name's k holders has no room for it, the name's owner copies it to the next
node after the k holders that has room (`files.repair.stand_ins`), so the name keeps k
copies. The owner offers it there every full round, which is how that node knows to keep
it (`VersionBook.offered_lately`); once the holder has room again the owner copies it
there, stops offering it to the stand-in, and the stand-in's copy goes as any copy held
outside the k holders does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from chordshare.files.messages import FileVersion
from chordshare.files.repair import KeyHolders, stand_ins, successor_addresses
from chordshare.files.room import RoomTable
from chordshare.transport.base import PeerError

if TYPE_CHECKING:
    from chordshare.sharing.replication import RepairReport, Replicator


async def stand_in_copies(
    replicator: Replicator,
    versions: Sequence[FileVersion],
    where: Mapping[str, KeyHolders | None],
    report: RepairReport,
) -> set[tuple[str, str]]:
    """Copy each name whose holders had no room for it (`report.no_room`) to its stand-ins;
    the (address, name) pairs that now hold it."""
    without_room: dict[str, set[str]] = {}
    for address, name in report.no_room:
        without_room.setdefault(name, set()).add(address)
    if not without_room:
        return set()
    state = replicator.state
    successors = successor_addresses(
        state.me.address, [n.address for n in state.successors], len(state.successors)
    )
    confirmed: set[tuple[str, str]] = set()
    now = time.monotonic()
    for version in versions:
        holders, full = where.get(version.name), without_room.get(version.name)
        manifest = replicator.store.manifest(version.name) if full else None
        if holders is None or not full or manifest is None:
            continue
        has_room = functools.partial(_has_room, replicator.rooms, manifest.size, now)
        for address in stand_ins(holders, successors, full, has_room):
            try:
                held = await replicator.reconcile(address, [version], report)
            except PeerError:
                continue
            confirmed |= {(address, name) for name in held}
    return confirmed


def _has_room(rooms: RoomTable, size: int, now: float, address: str) -> bool:
    return rooms.may_push(address, size, now)
