"""ConfirmOwner on the wire: a FindStep with `confirm`, answered with a claim; an older
node's plain step is taken as a ping, and what a peer may not send is refused."""

from __future__ import annotations

import pytest

from chordshare.chord.messages import Claim, ConfirmOwner, NodeRef, OwnerAnswer
from chordshare.ids import IdSpace
from chordshare.transport.codec import Codec
from chordshare.transport.limits import MAX_SUCCESSORS
from chordshare.v1 import chord_pb2 as pb

CODEC = Codec(IdSpace(16))


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"127.0.0.1:{7000 + ident}")


@pytest.mark.parametrize(
    "answer",
    [
        OwnerAnswer(ref(20), Claim.OWNER, (ref(28), ref(1))),
        OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(5),), vouched=True),
        OwnerAnswer(ref(20), Claim.UNSURE, retry_after=0.025),
    ],
)
def test_an_answer_crosses_the_wire_unchanged(answer: OwnerAnswer) -> None:
    wire = pb.FindStepReply.FromString(CODEC.owner_answer(answer).SerializeToString())
    assert CODEC.owner_answer_from(wire, ref(20)) == answer


def test_the_request_names_the_nodes_the_asker_could_not_reach() -> None:
    call = ConfirmOwner(ref(20), 9, (ref(5), ref(7)))
    request = CODEC.confirm_request(call, pb.Caller())
    assert request.confirm and CODEC.key_from(request.key) == 9
    assert CODEC.unreachable_from(request) == (ref(5), ref(7))
    assert not request.brief
    assert CODEC.confirm_request(ConfirmOwner(ref(20), 9, brief=True), pb.Caller()).brief


def test_an_older_nodes_plain_step_is_taken_as_a_ping() -> None:
    plain = pb.FindStepReply(done=False, nodes=[CODEC.node(ref(3))])
    assert CODEC.owner_answer_from(plain, ref(20)) == OwnerAnswer(ref(20), Claim.UNCHECKED)


def test_what_a_peer_may_not_send_is_refused() -> None:
    lost = pb.FindStepReply(claim=pb.CLAIM_NOT_OWNER, node=CODEC.node(ref(20)))
    with pytest.raises(ValueError, match="where the owner is"):
        CODEC.owner_answer_from(lost, ref(20))
    unknown = pb.FindStepReply(claim=99, node=CODEC.node(ref(20)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown claim"):
        CODEC.owner_answer_from(unknown, ref(20))
    many = pb.FindStepRequest(confirm=True, unreachable=[CODEC.node(ref(1))] * (MAX_SUCCESSORS + 1))
    with pytest.raises(ValueError, match="unreachable"):
        CODEC.unreachable_from(many)
