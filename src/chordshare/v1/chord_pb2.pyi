from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Claim(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLAIM_UNSPECIFIED: _ClassVar[Claim]
    CLAIM_OWNER: _ClassVar[Claim]
    CLAIM_NOT_OWNER: _ClassVar[Claim]
    CLAIM_UNSURE: _ClassVar[Claim]
CLAIM_UNSPECIFIED: Claim
CLAIM_OWNER: Claim
CLAIM_NOT_OWNER: Claim
CLAIM_UNSURE: Claim

class Node(_message.Message):
    __slots__ = ("id", "address")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    address: str
    def __init__(self, id: _Optional[bytes] = ..., address: _Optional[str] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("address", "oldest", "newest")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    address: str
    oldest: int
    newest: int
    def __init__(self, address: _Optional[str] = ..., oldest: _Optional[int] = ..., newest: _Optional[int] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("caller", "gossip")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    caller: Caller
    gossip: Gossip
    def __init__(self, caller: _Optional[_Union[Caller, _Mapping]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("node", "bits", "joined", "gossip")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    node: Node
    bits: int
    joined: bool
    gossip: Gossip
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., bits: _Optional[int] = ..., joined: _Optional[bool] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class FindStepRequest(_message.Message):
    __slots__ = ("key", "caller", "confirm", "unreachable", "gossip", "brief")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    BRIEF_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    caller: Caller
    confirm: bool
    unreachable: _containers.RepeatedCompositeFieldContainer[Node]
    gossip: Gossip
    brief: bool
    def __init__(self, key: _Optional[bytes] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., confirm: _Optional[bool] = ..., unreachable: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ..., brief: _Optional[bool] = ...) -> None: ...

class FindStepReply(_message.Message):
    __slots__ = ("done", "nodes", "claim", "node", "vouched", "retry_after_ms", "gossip")
    DONE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    VOUCHED_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    done: bool
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    claim: Claim
    node: Node
    vouched: bool
    retry_after_ms: int
    gossip: Gossip
    def __init__(self, done: _Optional[bool] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., claim: _Optional[_Union[Claim, str]] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., vouched: _Optional[bool] = ..., retry_after_ms: _Optional[int] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class GetNeighborsRequest(_message.Message):
    __slots__ = ("caller", "gossip")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    caller: Caller
    gossip: Gossip
    def __init__(self, caller: _Optional[_Union[Caller, _Mapping]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class Neighbors(_message.Message):
    __slots__ = ("node", "predecessor", "successors", "gossip")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PREDECESSOR_FIELD_NUMBER: _ClassVar[int]
    SUCCESSORS_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    node: Node
    predecessor: Node
    successors: _containers.RepeatedCompositeFieldContainer[Node]
    gossip: Gossip
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., predecessor: _Optional[_Union[Node, _Mapping]] = ..., successors: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class NotifyRequest(_message.Message):
    __slots__ = ("candidate", "caller", "gossip")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    candidate: Node
    caller: Caller
    gossip: Gossip
    def __init__(self, candidate: _Optional[_Union[Node, _Mapping]] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class NotifyReply(_message.Message):
    __slots__ = ("gossip",)
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    gossip: Gossip
    def __init__(self, gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("leaving", "predecessor", "successors", "caller", "gossip")
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    PREDECESSOR_FIELD_NUMBER: _ClassVar[int]
    SUCCESSORS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    leaving: Node
    predecessor: Node
    successors: _containers.RepeatedCompositeFieldContainer[Node]
    caller: Caller
    gossip: Gossip
    def __init__(self, leaving: _Optional[_Union[Node, _Mapping]] = ..., predecessor: _Optional[_Union[Node, _Mapping]] = ..., successors: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class LeaveReply(_message.Message):
    __slots__ = ("gossip",)
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    gossip: Gossip
    def __init__(self, gossip: _Optional[_Union[Gossip, _Mapping]] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Finger(_message.Message):
    __slots__ = ("start", "node")
    START_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    start: bytes
    node: Node
    def __init__(self, start: _Optional[bytes] = ..., node: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node", "predecessor", "successors", "fingers", "bits")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PREDECESSOR_FIELD_NUMBER: _ClassVar[int]
    SUCCESSORS_FIELD_NUMBER: _ClassVar[int]
    FINGERS_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    predecessor: Node
    successors: _containers.RepeatedCompositeFieldContainer[Node]
    fingers: _containers.RepeatedCompositeFieldContainer[Finger]
    bits: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., predecessor: _Optional[_Union[Node, _Mapping]] = ..., successors: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., fingers: _Optional[_Iterable[_Union[Finger, _Mapping]]] = ..., bits: _Optional[int] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    def __init__(self, key: _Optional[bytes] = ...) -> None: ...

class LookupReply(_message.Message):
    __slots__ = ("owner", "hops", "timeouts", "elapsed_us")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_US_FIELD_NUMBER: _ClassVar[int]
    owner: Node
    hops: int
    timeouts: int
    elapsed_us: int
    def __init__(self, owner: _Optional[_Union[Node, _Mapping]] = ..., hops: _Optional[int] = ..., timeouts: _Optional[int] = ..., elapsed_us: _Optional[int] = ...) -> None: ...

class MemberEvent(_message.Message):
    __slots__ = ("id", "address", "incarnation", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[MemberEvent.State]
        ALIVE: _ClassVar[MemberEvent.State]
        FAILED: _ClassVar[MemberEvent.State]
        LEFT: _ClassVar[MemberEvent.State]
    STATE_UNSPECIFIED: MemberEvent.State
    ALIVE: MemberEvent.State
    FAILED: MemberEvent.State
    LEFT: MemberEvent.State
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    address: str
    incarnation: int
    state: MemberEvent.State
    def __init__(self, id: _Optional[bytes] = ..., address: _Optional[str] = ..., incarnation: _Optional[int] = ..., state: _Optional[_Union[MemberEvent.State, str]] = ...) -> None: ...

class MemberDigest(_message.Message):
    __slots__ = ("count", "arcs")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ARCS_FIELD_NUMBER: _ClassVar[int]
    count: int
    arcs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, count: _Optional[int] = ..., arcs: _Optional[_Iterable[int]] = ...) -> None: ...

class Gossip(_message.Message):
    __slots__ = ("events", "digest")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[MemberEvent]
    digest: MemberDigest
    def __init__(self, events: _Optional[_Iterable[_Union[MemberEvent, _Mapping]]] = ..., digest: _Optional[_Union[MemberDigest, _Mapping]] = ...) -> None: ...
