"""Paused nodes and lossy links in the simulator, with Zave's invariants after every step:
no lookup names a wrong owner once a resumed node has run its maintenance (with or without
membership hints), a node whose
link to another is lossy is vouched for by that node's neighbours, and lists keep a node
that its neighbours still hear."""

from __future__ import annotations

from chordshare.chord import procedures
from chordshare.chord.lookup import find_successor
from chordshare.sim.experiment import build, repair
from chordshare.sim.gossip import GossipNetwork
from chordshare.sim.simulator import Simulator

BITS = 16


def converged(nodes: int, seed: int, r: int = 4) -> Simulator:
    sim = Simulator(bits=BITS, successors=r, seed=seed)
    for _ in range(nodes):
        sim.join()
    sim.converge(max_rounds=60)
    return sim


def wrong_owners(sim: Simulator, keys: int = 60) -> list[str]:
    """Lookups from running members that name another node than the first running member
    at or after the key."""
    ideal = sim.ideal_of(sorted(sim.running()))
    wrong = []
    origins = sorted(sim.running())
    for _ in range(keys):
        origin = sim.rng.choice(origins)
        key = sim.rng.getrandbits(BITS)
        owner = sim.lookup(origin, key).owner
        if owner != ideal.owner(key):
            wrong.append(f"{origin} looked {key} up: {owner.address}, not {ideal.owner(key)}")
    return wrong


def keys_of(sim: Simulator, address: str, count: int = 8) -> list[int]:
    state = sim.state(address)
    pred = sim.ideal().predecessor(state.me)
    gap = (state.me.id - pred.id) % sim.space.size
    return [(pred.id + 1 + i * gap // count) % sim.space.size for i in range(count)]


def spaced(sim: Simulator, count: int, r: int) -> list[str]:
    """`count` members at least r apart in ring order: pausing them never pauses a whole
    successor list."""
    order = [n.address for n in sim.ideal().nodes]
    start = sim.rng.randrange(len(order))
    return [order[(start + i * (r + 1)) % len(order)] for i in range(count)]


def test_paused_nodes_get_their_keys_back_at_their_first_maintenance() -> None:
    for seed in range(4):
        sim = converged(48, seed)
        paused = spaced(sim, 4, sim.successors)
        for address in paused:
            sim.freeze(address)

        def check(sim: Simulator = sim) -> None:
            assert sim.ring_problems() == []

        for _ in range(3):  # the ring routes around them and takes their keys
            sim.round(interleaved=True, check=check)
            assert wrong_owners(sim) == []
        for address in paused:
            sim.thaw(address)
        # Until a resumed node ran its maintenance, the successor that took its keys may
        # still answer for them: no assertion here. Its first round ends that.
        for address in paused:
            sim.maintain(address)
        assert not sim.network.unchecked
        assert wrong_owners(sim) == []
        for address in paused:
            for key in keys_of(sim, address):
                for origin in sim.member_list()[::5]:
                    assert sim.lookup(origin, key).owner.address == address
        sim.converge(max_rounds=20, interleaved=True, check=check)


def test_the_successor_hands_back_before_the_resumed_node_runs() -> None:
    """The other side: a successor that took a silent predecessor's keys probes it, and
    gives them back the moment it answers, whatever the resumed node does."""
    sim = converged(32, seed=7)
    address = spaced(sim, 1, sim.successors)[0]
    successor = sim.ideal().successors(sim.state(address).me, 1)[0].address
    sim.freeze(address)
    for member in sorted(sim.running()):
        sim.maintain(member)  # its successor noticed, absorbed it, was notified by another
    assert sim.state(successor).predecessor != sim.state(address).me
    sim.thaw(address)
    sim.run(successor, procedures.reclaim(sim.state(successor)))
    assert sim.state(successor).predecessor == sim.state(address).me
    sim.maintain(address)
    assert wrong_owners(sim) == []


def test_a_resumed_node_claims_nothing_until_it_checked_its_view() -> None:
    sim = converged(16, seed=3)
    address = spaced(sim, 1, sim.successors)[0]
    sim.freeze(address)
    sim.thaw(address)
    assert address in sim.network.unchecked
    key = sim.state(address).me.id
    other = next(a for a in sim.member_list() if a != address)
    try:
        sim.lookup(other, key)
    except procedures.LookupFailed as err:
        assert "checking its view" in str(err)
    else:
        raise AssertionError("a node unchecked after a pause claimed a key")
    sim.maintain(address)
    assert sim.lookup(other, key).owner.address == address


def test_a_node_that_one_peer_cannot_reach_is_still_named_the_owner() -> None:
    """A one-way lossy link: the asker cannot reach the owner, but the owner's successor
    can, so it vouches for it; and the owner's predecessor, which cannot reach it either,
    keeps it in its list while that successor still hears it."""
    sim = converged(32, seed=11)
    ideal = sim.ideal()
    order = [n.address for n in ideal.nodes]
    owner = order[10]
    predecessor = order[9]
    askers = [order[3], order[20], predecessor]
    for asker in askers:
        sim.network.blocked.add((asker, owner))
    for _ in range(5):
        sim.round(interleaved=True, check=lambda: None)
        assert sim.ring_problems() == []
        assert sim.state(predecessor).successors[0].address == owner
        for asker in askers:
            for key in keys_of(sim, owner):
                assert sim.lookup(asker, key).owner.address == owner


def test_a_lossy_node_keeps_the_ring_whole_and_is_found_again() -> None:
    sim = converged(32, seed=5)
    lossy = spaced(sim, 1, sim.successors)[0]
    sim.network.lossy(lossy, 0.3)

    def check() -> None:
        assert sim.ring_problems() == []

    for _ in range(10):
        sim.round(interleaved=True, check=check)
    sim.network.lossy(lossy, 0.0)
    sim.converge(max_rounds=20, interleaved=True, check=check)
    assert wrong_owners(sim) == []


def hinted_wrong_owners(sim: Simulator, network: GossipNetwork, keys: int = 60) -> list[str]:
    """As `wrong_owners`, for lookups that first ask the node the asker's table names."""
    ideal = sim.ideal_of(sorted(sim.running()))
    origins = sorted(sim.running())
    wrong = []
    for _ in range(keys):
        origin = sim.rng.choice(origins)
        key = sim.rng.getrandbits(BITS)
        hint = network.memberships[origin].owner_hint(key)
        hint = None if hint is None or hint.address == origin else hint
        lookup = find_successor(sim.state(origin), key, sim.network.suspects[origin], hint=hint)
        owner = sim.run(origin, lookup).owner
        if owner != ideal.owner(key):
            wrong.append(f"{origin} looked {key} up: {owner.address}, not {ideal.owner(key)}")
    return wrong


def test_hinted_lookups_name_no_wrong_owner_through_a_freeze_and_a_thaw() -> None:
    """The hints keep naming frozen nodes (a timeout is no failure): lookups pass over
    them to the long way, and after the thaw ask them again."""
    for seed in range(3):
        network = GossipNetwork(seed=seed)
        sim = Simulator(bits=BITS, successors=4, seed=seed, network=network)
        build(sim, 48)
        assert not repair(sim).problems
        network.start()
        paused = spaced(sim, 4, sim.successors)
        for address in paused:
            sim.freeze(address)

        def check(sim: Simulator = sim) -> None:
            assert sim.ring_problems() == []

        for _ in range(3):
            network.clock += 0.5
            sim.round(interleaved=True, check=check)
            assert hinted_wrong_owners(sim, network) == []
        assert all(
            network.memberships[a].knows_alive(sim.state(p).me.id)
            for a in sim.running()
            for p in paused
        )
        for address in paused:
            sim.thaw(address)
        for address in paused:
            sim.maintain(address)
        assert hinted_wrong_owners(sim, network) == []
