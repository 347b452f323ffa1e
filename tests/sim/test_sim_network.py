"""The in-memory network: delivery, failure, suspicion and counters."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from chordshare.chord.messages import (
    Call,
    FindStep,
    GetNeighbors,
    Neighbors,
    NodeRef,
    Ping,
    Pong,
    Reply,
    StepReply,
    Unreachable,
)
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace
from chordshare.sim.network import Network

SPACE = IdSpace(8)


def node(ident: int) -> RoutingState:
    return RoutingState(NodeRef(ident, f"n{ident}"), SPACE, r=3)


def pinger(peers: list[NodeRef]) -> Generator[Call, Reply, list[Reply]]:
    replies = []
    for peer in peers:
        replies.append((yield Ping(peer)))
    return replies


def test_run_delivers_calls_and_returns_the_procedure_value() -> None:
    net = Network()
    a, b = net.add(node(1)), net.add(node(2))
    replies = net.run("n1", pinger([b.me, a.me]))
    assert replies == [Pong(b.me), Pong(a.me)]
    assert net.counters.calls == {"Ping": 2}
    assert (net.counters.delivered, net.counters.failed) == (2, 0)


def test_a_call_to_a_removed_node_fails_and_makes_the_caller_suspect_it() -> None:
    net = Network()
    net.add(node(1))
    b = net.add(node(2))
    net.remove("n2")
    replies = net.run("n1", pinger([b.me]))
    assert replies == [Unreachable(b.me, "not live", refused=True)]  # as after kill -9
    assert net.suspects["n1"] == {"n2"}
    assert net.counters.failed == 1
    assert "n2" not in net.states


def test_a_reply_clears_suspicion() -> None:
    net = Network()
    net.add(node(1))
    b = net.add(node(2))
    net.suspects["n1"].add("n2")
    net.run("n1", pinger([b.me]))
    assert net.suspects["n1"] == set()


def test_the_target_answers_with_its_own_suspicion_set() -> None:
    """A lookup step leaves out the hops the target suspects, whoever else suspects them."""
    net = Network()
    net.add(node(10))
    b = net.add(node(20))
    b.successors = [NodeRef(30, "n30")]
    b.fingers[0] = NodeRef(15, "n15")  # a hop towards key 17, going round the ring

    def step() -> Generator[Call, Reply, Reply]:
        return (yield FindStep(b.me, 17))

    net.suspects["n10"].add("n15")  # the caller's suspicion does not count
    n15, n30 = NodeRef(15, "n15"), NodeRef(30, "n30")
    assert net.run("n10", step()) == StepReply(False, (n15, n30))
    net.suspects["n20"].add("n15")
    assert net.run("n10", step()) == StepReply(False, (n30,))


def test_request_and_respond_split_a_call_in_two() -> None:
    net = Network()
    a, b = net.add(node(1)), net.add(node(2))
    call = GetNeighbors(b.me)
    reply = net.request(call)
    assert reply == Neighbors(b.me, None, (b.me,))
    net.remove("n2")  # the reply was sent before the target went down
    net.respond("n1", call, reply)
    assert net.suspects["n1"] == set()
    net.respond("n1", Ping(b.me), net.request(Ping(b.me)))
    assert net.suspects["n1"] == {"n2"}
    assert a.me.address in net.live


def test_a_node_cannot_be_added_twice() -> None:
    net = Network()
    net.add(node(1))
    with pytest.raises(ValueError, match="already live"):
        net.add(node(1))
