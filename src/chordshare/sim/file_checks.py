"""What converged means for the files of a simulated ring, checked once repair has settled:
every acknowledged file on exactly its k ideal holders in its newest version, removed names
held live nowhere, no holder list naming a node that is gone, and no acknowledged version
gone without a trace (held, replaced by one held, removed by a removal held, or kept under
its conflict name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chordshare.files.names import conflict_name
from chordshare.files.placement import file_key
from chordshare.files.versions import newest, removes, replaced

if TYPE_CHECKING:
    from chordshare.sim.files import FileWorld


def problems(world: FileWorld) -> list[str]:
    """Convergence problems: run once repair has settled on a converged ring."""
    ideal = world.sim.ideal()
    live = world.sim.live
    found: list[str] = []
    for name in sorted(world.acked):
        holding = {a for a in world.where[name] if a in live}
        held = {a: world.books[a].held[name] for a in holding}
        # An unacknowledged put may still take effect (as after a client's timeout):
        # the version that wins is the one every holder must converge on.
        winner = newest(held.values())
        if winner is None:
            found.append(f"{name!r} is held by no live node")
            continue
        if winner.deleted:
            alive = sorted(a for a, v in held.items() if not v.deleted)
            if alive:
                found.append(f"removed {name!r} is still held live by {', '.join(alive)}")
            continue
        owner = ideal.owner(file_key(world.sim.space, name))
        expected = {owner.address, *(n.address for n in ideal.successors(owner, world.k - 1))}
        if holding != expected:
            found.append(
                f"{name!r} is held by {sorted(holding)}, its holders are {sorted(expected)}"
            )
        stale = sorted(a for a, v in held.items() if v != winner)
        if stale:
            found.append(f"{name!r} is held in an older version by {', '.join(stale)}")
    found += lost_versions(world)
    for address, book in sorted(world.books.items()):
        for name, holders in sorted(book.confirmed.items()):
            gone = sorted(holders - live)
            if gone:
                found.append(f"{address} names {', '.join(gone)} as holders of {name!r}")
    return found


def lost_versions(world: FileWorld) -> list[str]:
    """Acknowledged versions that are gone without a trace: not held, not replaced by a
    version held, not removed by a removal held, and not kept under a conflict name.
    Nothing a client was told is stored may vanish that way, whatever met it."""
    live = world.sim.live
    lost = []
    for version in world.acknowledged:
        name = version.name
        held = [world.books[a].held[name] for a in world.where[name] if a in live]
        held += [r for a in live if (r := world.book(a).removals.get(name)) is not None]
        if any(
            v == version or replaced(v, version) or (v.deleted and removes(v, version))
            for v in held
        ):
            continue
        aside = conflict_name(name, version.version, version.sha256)
        if any(a in live for a in world.where[aside]):
            continue
        lost.append(f"acknowledged {name!r} version {version.version} is gone without a trace")
    return lost


def short_of_copies(world: FileWorld) -> list[str]:
    """Acknowledged files held live by fewer than k live nodes, while some disks are full
    and enough nodes have room: the copies a full holder cannot take must be elsewhere."""
    live = world.sim.live
    with_room = [a for a in world.sim.members if a not in world.full]
    short = []
    for name, floor in sorted(world.acked.items()):
        if floor.deleted:
            continue
        holding = [
            a for a in world.where[name] if a in live and not world.books[a].held[name].deleted
        ]
        if len(holding) < world.k <= len(with_room):
            short.append(f"{name!r} has {len(holding)} copies: {sorted(holding)}")
    return short
