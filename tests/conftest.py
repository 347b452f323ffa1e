"""Shared helpers for tests of the Chord core: hand-built rings and a synchronous network.

They are handed out as session fixtures (not imported): test files in different folders have
no package, so importing `conftest` by name could pick up another folder's conftest.
"""

from __future__ import annotations

import os

# The tests start node processes while this one has gRPC channels open. With gRPC's fork
# support on, the child's post-fork handler restarts a poller whose epoll descriptor
# subprocess then closes before exec, and the child aborts (grpc/grpc#43055, seen here as
# "epoll_wait error: Bad file descriptor", exit -6). The children exec at once and need
# none of the parent's gRPC state. Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import Ack, Call, NodeRef, Pause, Reply, Unreachable
from chordshare.chord.procedures import answer
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Generator[None, None, None]:
    """Nodes started without --data-dir (CLI error cases, console runs) keep their data under
    XDG_DATA_HOME, and a put without --identity creates the user's publisher key under
    XDG_CONFIG_HOME: point both, for this process and every process it starts, at temporary
    directories instead of the user's own."""
    names = ("XDG_DATA_HOME", "XDG_CONFIG_HOME")
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in before.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


def address_of(ident: int) -> str:
    return f"n{ident}"


@dataclass
class Network:
    """Nodes by address; a call to a dead or unknown address fails. Runs a procedure to its
    end, answering each call with the callee's `answer` (the calls an answer makes are
    made at once), and keeps a log of the procedure's calls."""

    nodes: dict[str, RoutingState] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # of those, where nothing listens at all
    calls: list[Call] = field(default_factory=list)
    failures: int = 0
    # Whom each node's answers found unreachable (the lookups under test keep their own).
    suspects: dict[str, set[str]] = field(default_factory=dict)

    def live(self) -> set[str]:
        return set(self.nodes) - self.dead

    def add(self, state: RoutingState) -> RoutingState:
        self.nodes[state.me.address] = state
        return state

    def reply(self, call: Call) -> Reply:
        target = self.nodes.get(call.peer.address)
        if target is None or call.peer.address in self.dead:
            self.failures += 1
            refused = call.peer.address in self.refused
            return Unreachable(call.peer, "refused" if refused else "dead", refused)
        suspects = self.suspects.setdefault(call.peer.address, set())
        return self._answer(answer(target, call, suspects), suspects)

    def _answer(
        self, procedure: Generator[Call, Reply, Reply], suspects: set[str] | None = None
    ) -> Reply:
        """Drive an answer; the calls it makes are not the caller's (neither logged nor
        counted as the caller's failures), and update the answering node's `suspects`."""
        suspects = set() if suspects is None else suspects
        try:
            call = next(procedure)
            while True:
                address = call.peer.address
                target = self.nodes.get(address)
                if target is None or address in self.dead:
                    reply: Reply = Unreachable(call.peer, "dead")
                    suspects.add(address)
                else:
                    theirs = self.suspects.setdefault(address, set())
                    reply = self._answer(answer(target, call, theirs), theirs)
                    suspects.discard(address)
                call = procedure.send(reply)
        except StopIteration as stop:
            result: Reply = stop.value
            return result

    def run(self, procedure: Generator[Call, Reply, Any]) -> Any:
        try:
            call = next(procedure)
            while True:
                if isinstance(call, Pause):  # no time passes here
                    call = procedure.send(Ack())
                    continue
                self.calls.append(call)
                call = procedure.send(self.reply(call))
        except StopIteration as stop:
            return stop.value


def converged_ring(
    ids: Iterable[int], space: IdSpace, r: int, fingers: bool = True
) -> tuple[Network, IdealRouting]:
    """A network whose nodes hold exactly the pointers the sorted id list calls for."""
    refs = [NodeRef(i, address_of(i)) for i in sorted(set(ids))]
    ideal = IdealRouting.of(refs, space)
    net = Network()
    for ref in refs:
        state = RoutingState(ref, space, r=r)
        state.successors = ideal.successors(ref, r)
        state.predecessor = ideal.predecessor(ref)
        if fingers:
            state.fingers = ideal.fingers(ref)
        net.add(state)
    return net, ideal


@pytest.fixture(scope="session")
def make_ring() -> Callable[..., tuple[Network, IdealRouting]]:
    return converged_ring


@pytest.fixture(scope="session")
def make_network() -> Callable[[], Network]:
    return Network
