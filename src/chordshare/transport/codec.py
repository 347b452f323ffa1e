"""Conversions between protocol values and their protobuf messages.

Decoding checks what a peer sent: an id outside the ring or a missing field raises
`ValueError`, which the gRPC transport reports as a peer that answered garbage.
"""

from __future__ import annotations

from chordshare.chord.messages import (
    Claim,
    ConfirmOwner,
    Neighbors,
    NodeRef,
    OwnerAnswer,
    StepReply,
)
from chordshare.ids import IdSpace
from chordshare.transport.address import normalize_address
from chordshare.transport.limits import MAX_SUCCESSORS
from chordshare.v1 import chord_pb2 as pb

_CLAIMS = {
    Claim.OWNER: pb.CLAIM_OWNER,
    Claim.NOT_OWNER: pb.CLAIM_NOT_OWNER,
    Claim.UNSURE: pb.CLAIM_UNSURE,
    Claim.UNCHECKED: pb.CLAIM_UNSPECIFIED,
}
_CLAIMS_FROM = {wire: claim for claim, wire in _CLAIMS.items()}


class Codec:
    def __init__(self, space: IdSpace) -> None:
        self.space = space

    def node(self, ref: NodeRef) -> pb.Node:
        return pb.Node(id=self.space.id_bytes(ref.id), address=ref.address)

    def node_ref(self, msg: pb.Node) -> NodeRef:
        if not msg.address:
            raise ValueError("node without an address")
        return NodeRef(self.space.id_from_bytes(msg.id), normalize_address(msg.address))

    def optional_node_ref(self, parent: object, field: str) -> NodeRef | None:
        if not parent.HasField(field):  # type: ignore[attr-defined]
            return None
        return self.node_ref(getattr(parent, field))

    def key(self, ident: int) -> bytes:
        return self.space.id_bytes(ident)

    def key_from(self, data: bytes) -> int:
        return self.space.id_from_bytes(data)

    def step_reply(self, reply: StepReply) -> pb.FindStepReply:
        return pb.FindStepReply(done=reply.done, nodes=[self.node(n) for n in reply.nodes])

    def step_from(self, msg: pb.FindStepReply) -> StepReply:
        return StepReply(done=msg.done, nodes=tuple(self.node_ref(n) for n in msg.nodes))

    def neighbors(self, value: Neighbors) -> pb.Neighbors:
        msg = pb.Neighbors(
            node=self.node(value.node), successors=[self.node(n) for n in value.successors]
        )
        if value.predecessor is not None:
            msg.predecessor.CopyFrom(self.node(value.predecessor))
        return msg

    def neighbors_from(self, msg: pb.Neighbors) -> Neighbors:
        if not msg.HasField("node"):
            raise ValueError("neighbors without the answering node")
        successors = tuple(self.node_ref(n) for n in msg.successors)
        if not successors:
            raise ValueError("an empty successor list")
        return Neighbors(
            self.node_ref(msg.node), self.optional_node_ref(msg, "predecessor"), successors
        )

    def confirm_request(self, call: ConfirmOwner, caller: pb.Caller) -> pb.FindStepRequest:
        return pb.FindStepRequest(
            key=self.key(call.key),
            caller=caller,
            confirm=True,
            unreachable=[self.node(n) for n in call.unreachable],
            brief=call.brief,
        )

    def unreachable_from(self, msg: pb.FindStepRequest) -> tuple[NodeRef, ...]:
        if len(msg.unreachable) > MAX_SUCCESSORS:
            raise ValueError(
                f"at most {MAX_SUCCESSORS} unreachable nodes, got {len(msg.unreachable)}"
            )
        return tuple(self.node_ref(n) for n in msg.unreachable)

    def owner_answer(self, answer: OwnerAnswer) -> pb.FindStepReply:
        return pb.FindStepReply(
            nodes=[self.node(n) for n in answer.nodes],
            claim=_CLAIMS[answer.claim],
            node=self.node(answer.node),
            vouched=answer.vouched,
            retry_after_ms=round(answer.retry_after * 1000),
        )

    def owner_answer_from(self, msg: pb.FindStepReply, asked: NodeRef) -> OwnerAnswer:
        """The answer to a confirm; an older node's plain step is UNCHECKED: it answered,
        as a ping would, and `asked` is taken for who it is."""
        claim = _CLAIMS_FROM.get(msg.claim)
        if claim is None:
            raise ValueError(f"an unknown claim {msg.claim}")
        nodes = tuple(self.node_ref(n) for n in msg.nodes)
        if claim is Claim.UNCHECKED:
            return OwnerAnswer(asked, claim)
        node = self.node_ref(msg.node) if msg.HasField("node") else asked
        if claim is Claim.NOT_OWNER and not nodes:
            raise ValueError("not the owner, and no word of where the owner is")
        return OwnerAnswer(node, claim, nodes, msg.vouched, msg.retry_after_ms / 1000)
