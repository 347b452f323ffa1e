from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Manifest(_message.Message):
    __slots__ = ("name", "size", "sha256", "chunk_size", "chunks", "created", "publisher", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: bytes
    chunk_size: int
    chunks: _containers.RepeatedScalarFieldContainer[bytes]
    created: float
    publisher: bytes
    signature: bytes
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., chunk_size: _Optional[int] = ..., chunks: _Optional[_Iterable[bytes]] = ..., created: _Optional[float] = ..., publisher: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PutHeader(_message.Message):
    __slots__ = ("manifest", "replace", "replica", "owner_only", "manifest_last", "legacy_name", "ancestry", "repair")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    OWNER_ONLY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_LAST_FIELD_NUMBER: _ClassVar[int]
    LEGACY_NAME_FIELD_NUMBER: _ClassVar[int]
    ANCESTRY_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    replace: bool
    replica: bool
    owner_only: bool
    manifest_last: bool
    legacy_name: bool
    ancestry: bytes
    repair: bool
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ..., replace: _Optional[bool] = ..., replica: _Optional[bool] = ..., owner_only: _Optional[bool] = ..., manifest_last: _Optional[bool] = ..., legacy_name: _Optional[bool] = ..., ancestry: _Optional[bytes] = ..., repair: _Optional[bool] = ...) -> None: ...

class PutChunk(_message.Message):
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("header", "chunk", "manifest")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    header: PutHeader
    chunk: PutChunk
    manifest: Manifest
    def __init__(self, header: _Optional[_Union[PutHeader, _Mapping]] = ..., chunk: _Optional[_Union[PutChunk, _Mapping]] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...

class PutSmallRequest(_message.Message):
    __slots__ = ("header", "chunks")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    header: PutHeader
    chunks: _containers.RepeatedCompositeFieldContainer[PutChunk]
    def __init__(self, header: _Optional[_Union[PutHeader, _Mapping]] = ..., chunks: _Optional[_Iterable[_Union[PutChunk, _Mapping]]] = ...) -> None: ...

class PutReply(_message.Message):
    __slots__ = ("manifest", "unchanged")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    unchanged: bool
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class MissingChunksRequest(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, chunks: _Optional[_Iterable[bytes]] = ...) -> None: ...

class MissingChunksReply(_message.Message):
    __slots__ = ("missing",)
    MISSING_FIELD_NUMBER: _ClassVar[int]
    missing: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, missing: _Optional[_Iterable[int]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("sha256", "indexes", "repair", "manifest_id")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ID_FIELD_NUMBER: _ClassVar[int]
    sha256: bytes
    indexes: _containers.RepeatedScalarFieldContainer[int]
    repair: bool
    manifest_id: bytes
    def __init__(self, sha256: _Optional[bytes] = ..., indexes: _Optional[_Iterable[int]] = ..., repair: _Optional[bool] = ..., manifest_id: _Optional[bytes] = ...) -> None: ...

class ChunkData(_message.Message):
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class FindFileRequest(_message.Message):
    __slots__ = ("name", "inline_up_to", "owner_only", "unfinished", "manifest_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INLINE_UP_TO_FIELD_NUMBER: _ClassVar[int]
    OWNER_ONLY_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    inline_up_to: int
    owner_only: bool
    unfinished: bool
    manifest_id: bytes
    def __init__(self, name: _Optional[str] = ..., inline_up_to: _Optional[int] = ..., owner_only: _Optional[bool] = ..., unfinished: _Optional[bool] = ..., manifest_id: _Optional[bytes] = ...) -> None: ...

class UnfinishedPut(_message.Message):
    __slots__ = ("size", "chunk_size", "indexes", "chunks")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    size: int
    chunk_size: int
    indexes: _containers.RepeatedScalarFieldContainer[int]
    chunks: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, size: _Optional[int] = ..., chunk_size: _Optional[int] = ..., indexes: _Optional[_Iterable[int]] = ..., chunks: _Optional[_Iterable[bytes]] = ...) -> None: ...

class FindFileReply(_message.Message):
    __slots__ = ("found", "manifest", "holders", "data", "unfinished")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_FIELD_NUMBER: _ClassVar[int]
    found: bool
    manifest: Manifest
    holders: _containers.RepeatedScalarFieldContainer[str]
    data: bytes
    unfinished: UnfinishedPut
    def __init__(self, found: _Optional[bool] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ..., holders: _Optional[_Iterable[str]] = ..., data: _Optional[bytes] = ..., unfinished: _Optional[_Union[UnfinishedPut, _Mapping]] = ...) -> None: ...

class FileVersion(_message.Message):
    __slots__ = ("name", "version", "sha256", "deleted", "legacy_name", "ancestry", "publisher", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    LEGACY_NAME_FIELD_NUMBER: _ClassVar[int]
    ANCESTRY_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: float
    sha256: bytes
    deleted: bool
    legacy_name: bool
    ancestry: bytes
    publisher: bytes
    signature: bytes
    def __init__(self, name: _Optional[str] = ..., version: _Optional[float] = ..., sha256: _Optional[bytes] = ..., deleted: _Optional[bool] = ..., legacy_name: _Optional[bool] = ..., ancestry: _Optional[bytes] = ..., publisher: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class OfferRequest(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileVersion]
    def __init__(self, files: _Optional[_Iterable[_Union[FileVersion, _Mapping]]] = ...) -> None: ...

class OfferReply(_message.Message):
    __slots__ = ("wanted", "newer", "room")
    WANTED_FIELD_NUMBER: _ClassVar[int]
    NEWER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    wanted: _containers.RepeatedScalarFieldContainer[str]
    newer: _containers.RepeatedCompositeFieldContainer[FileVersion]
    room: int
    def __init__(self, wanted: _Optional[_Iterable[str]] = ..., newer: _Optional[_Iterable[_Union[FileVersion, _Mapping]]] = ..., room: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("name", "version", "replica", "publisher", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: float
    replica: bool
    publisher: bytes
    signature: bytes
    def __init__(self, name: _Optional[str] = ..., version: _Optional[float] = ..., replica: _Optional[bool] = ..., publisher: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class DeleteReply(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class IndexEntry(_message.Message):
    __slots__ = ("name", "size", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: bytes
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ...) -> None: ...

class IndexRecord(_message.Message):
    __slots__ = ("key", "entry")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    key: str
    entry: IndexEntry
    def __init__(self, key: _Optional[str] = ..., entry: _Optional[_Union[IndexEntry, _Mapping]] = ...) -> None: ...

class PublishIndexRequest(_message.Message):
    __slots__ = ("records", "ttl", "remove")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[IndexRecord]
    ttl: float
    remove: bool
    def __init__(self, records: _Optional[_Iterable[_Union[IndexRecord, _Mapping]]] = ..., ttl: _Optional[float] = ..., remove: _Optional[bool] = ...) -> None: ...

class PublishIndexReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryIndexRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class QueryIndexReply(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[IndexEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[IndexEntry, _Mapping]]] = ...) -> None: ...

class Locator(_message.Message):
    __slots__ = ("manifest", "address", "cached")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    address: str
    cached: bool
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ..., address: _Optional[str] = ..., cached: _Optional[bool] = ...) -> None: ...

class PublishLocatorsRequest(_message.Message):
    __slots__ = ("locators", "ttl")
    LOCATORS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    locators: _containers.RepeatedCompositeFieldContainer[Locator]
    ttl: float
    def __init__(self, locators: _Optional[_Iterable[_Union[Locator, _Mapping]]] = ..., ttl: _Optional[float] = ...) -> None: ...

class PublishLocatorsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeepFileRequest(_message.Message):
    __slots__ = ("name", "manifest_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    manifest_id: bytes
    def __init__(self, name: _Optional[str] = ..., manifest_id: _Optional[bytes] = ...) -> None: ...

class KeepFileReply(_message.Message):
    __slots__ = ("outcome",)
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[KeepFileReply.Outcome]
        STARTED: _ClassVar[KeepFileReply.Outcome]
        NOT_NOW: _ClassVar[KeepFileReply.Outcome]
        HELD: _ClassVar[KeepFileReply.Outcome]
        OFF: _ClassVar[KeepFileReply.Outcome]
        UNKNOWN: _ClassVar[KeepFileReply.Outcome]
    OUTCOME_UNSPECIFIED: KeepFileReply.Outcome
    STARTED: KeepFileReply.Outcome
    NOT_NOW: KeepFileReply.Outcome
    HELD: KeepFileReply.Outcome
    OFF: KeepFileReply.Outcome
    UNKNOWN: KeepFileReply.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: KeepFileReply.Outcome
    def __init__(self, outcome: _Optional[_Union[KeepFileReply.Outcome, str]] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoredFile(_message.Message):
    __slots__ = ("manifest", "shared")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    shared: bool
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ..., shared: _Optional[bool] = ...) -> None: ...

class ListFilesReply(_message.Message):
    __slots__ = ("files", "used_bytes", "max_bytes")
    FILES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[StoredFile]
    used_bytes: int
    max_bytes: int
    def __init__(self, files: _Optional[_Iterable[_Union[StoredFile, _Mapping]]] = ..., used_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...
