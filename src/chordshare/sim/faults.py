"""The simulator's fault model: which node may go now without breaking Zave's proof.

Churn and the file runs ask it before every crash or leave they schedule, so that a run
tests the protocol inside the conditions it is proven under, not a ring cut in two.
"""

from __future__ import annotations

from chordshare.chord.messages import LeaveNotice, Neighbors, NodeRef
from chordshare.sim.simulator import Simulator


def safe_to_remove(sim: Simulator, victim: str, leaving: bool = False) -> bool:
    """Whether `victim` may crash (or, with `leaving`, start a graceful leave) now
    without breaking the fault model of Zave's proof.

    "Fewer than r consecutive nodes gone at once", once lists can be stale, means: every
    successor list a member holds, and every list it is about to adopt (from a reply or
    leave notice in flight), keeps a live entry that is not leaving. A joiner missing
    from a list does not shield its neighbours, so the rule reads the lists, not the
    ideal ring. A leaving node still answers calls, and a predecessor that never got
    its notice may adopt it and r - 1 entries of its list: those must hold a survivor.
    """
    live = sim.network.live
    doomed = sim.leaving | {victim}
    answering = doomed if leaving else doomed - {victim}
    keep = sim.successors - 1

    def holds(address: str, nodes: list[NodeRef]) -> bool:
        if address in answering:
            nodes = nodes[:keep]
        return any(n.address in live and n.address not in doomed for n in nodes)

    for address in sim.members:
        if (leaving or address != victim) and not holds(address, sim.state(address).successors):
            return False
    for flight in sim.flights:
        if flight.origin == victim and not leaving:
            continue
        # Lists that may be adopted when a message in flight arrives, or that a flight
        # holds. The private `_ordered_list` is what adopt_successors and
        # on_leave_notice keep of them.
        pending = [flight.reply] if isinstance(flight.reply, Neighbors) else []
        state = sim.state(flight.origin)
        for reply in [*flight.received, *pending]:
            prospect = state._ordered_list([reply.node, *reply.successors])
            if not holds(flight.origin, prospect):
                return False
        call = flight.call
        if isinstance(call, LeaveNotice) and call.successors and call.peer.address in live:
            target = sim.state(call.peer.address)
            handed = [n for n in call.successors if n != call.leaving]
            if not holds(call.peer.address, target._ordered_list(handed)):
                return False
    return True
