"""The shapes the REST API answers with, as pydantic models: FastAPI checks every answer
against them and puts them in the OpenAPI document. Each mirrors a `*_json` helper
(`shapes`, `transport.client`) field for field: an extra field is refused, so a
helper that grows one fails the API's tests instead of drifting from the document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SHA256_HEX = r"^[0-9a-f]{64}$"


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeRef(Shape):
    id: int = Field(ge=0, description="The node's ring id.")
    address: str = Field(description="HOST:PORT its peers reach it at.")


class Finger(Shape):
    start: int = Field(ge=0, description="The first id of the finger's interval.")
    node: NodeRef | None


class CacheInfo(Shape):
    files: int = Field(ge=0, description="Whole files kept, each served to other getters.")
    used_bytes: int = Field(ge=0)
    max_bytes: int = Field(ge=0, description="Its limit (--api-cache); 0: it keeps nothing.")
    evictions: int = Field(ge=0, description="Files evicted to make room.")
    served_bytes: int = Field(ge=0, description="Chunk bytes served from it to other getters.")


class NodeInfo(Shape):
    id: int = Field(ge=0)
    address: str
    bits: int = Field(ge=1, description="Width m of the ring's ids.")
    predecessor: NodeRef | None
    successors: list[NodeRef]
    fingers: list[Finger]
    cache: CacheInfo | None = Field(
        None, description="This node's download cache; null for another node."
    )


class Ring(Shape):
    nodes: list[NodeRef] = Field(description="Every node, from this one along successors.")


class Lookup(Shape):
    key: int = Field(ge=0, description="The id looked up.")
    owner: NodeRef
    hops: int = Field(ge=0)
    timeouts: int = Field(ge=0, description="Nodes that did not answer on the way.")


class FileInfo(Shape):
    name: str
    size: int = Field(ge=0, description="Bytes.")
    sha256: str = Field(pattern=SHA256_HEX, description="The whole file's SHA-256.")
    chunks: int = Field(ge=0)
    created: float = Field(description="The version: when it was put (Unix seconds).")
    conflict_of: str | None = Field(
        default=None,
        description="Set on a version kept aside because it was written apart from the one "
        "that kept the name (on two sides of a split ring, say): that name. Null otherwise.",
    )
    publisher: str | None = Field(
        default=None,
        description="Fingerprint of the key that published this version: only that key (or "
        "an admin key of the nodes) may replace or remove it. Null for a file stored before "
        "signatures, which anyone may replace.",
    )
    publisher_key: str | None = Field(
        default=None, description="That key in full (ed25519:...), as `chordshare id show` prints."
    )

    kind: Literal["folder"] | None = Field(
        default=None,
        description="`folder` for a folder (its manifest, stored as "
        "`manifest_name`): `size` is then its files' bytes, `files` how many; "
        "`GET /api/v1/folders/{name}` lists them. Null for a file.",
    )
    files: int | None = Field(default=None, ge=0, description="A folder's files (null if unread).")
    manifest_name: str | None = Field(default=None, description="Where a folder's manifest is.")


class Stored(FileInfo):
    unchanged: bool = Field(description="The network held these very bytes already.")


# An upload answers 201 with what it stored, or 200 when nothing changed.
UNCHANGED: dict[int | str, dict[str, Any]] = {
    200: {"model": Stored, "description": "That name held these bytes already."}
}


class NodeFile(FileInfo):
    shared: bool = Field(description="Shared in place from a directory, not stored.")


class NodeFiles(Shape):
    node: str = Field(description="HOST:PORT of the node listed.")
    used_bytes: int = Field(ge=0)
    max_bytes: int | None = Field(ge=0, description="Its quota; null: none.")
    files: list[NodeFile]


class HeldFile(FileInfo):
    holders: list[str] = Field(description="HOST:PORT of each node holding a copy.")


class NetworkFiles(Shape):
    files: list[HeldFile]


class LinkInfo(FileInfo):
    link: str = Field(description="chordshare://<manifest id>/<name>?via=HOST:PORT&...")
    manifest_id: str = Field(
        pattern=SHA256_HEX, description="The id of the manifest the link names: exact bytes."
    )
    needs_cluster_token: bool = Field(
        description="The network asks for a cluster token: whoever opens the link needs it."
    )
    kind: Literal["folder"] | None = Field(
        default=None,
        description="`folder` for a link to a folder: to its manifest file (`name` is "
        "NAME.chordshare-folder, `size` its bytes), which pins that version of every file "
        "in it; `/api/v1/link/file` answers it as a zip. Null for a file.",
    )


class Match(Shape):
    name: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_HEX)

    kind: Literal["folder"] | None = Field(default=None, description="`folder` for a folder.")
    manifest_name: str | None = None


class Matches(Shape):
    files: list[Match]


class Leaving(Shape):
    leaving: Literal[True]


class FingerTable(Shape):
    node: NodeRef
    fingers: list[Finger]


class Predecessor(Shape):
    predecessor: NodeRef | None


class Successors(Shape):
    successor: NodeRef
    successors: list[NodeRef]


class Health(Shape):
    status: Literal["serving"]


class FolderEntry(Shape):
    path: str = Field(description="Relative to the folder, `/` between its parts.")
    type: Literal["file", "dir"]
    mode: int = Field(ge=0, le=0o777, description="Permission bits.")
    size: int = Field(ge=0, description="A file's bytes (0 for a folder).")
    id: str | None = Field(description="A file's manifest id (hex); null for a folder.")


class FolderInfo(Shape):
    name: str
    kind: Literal["folder"]
    files: int = Field(ge=0)
    size: int = Field(ge=0, description="Bytes of all its files.")
    entries: list[FolderEntry]


class FolderStored(FolderInfo):
    unchanged: bool = Field(description="The network held this very folder already.")
    removed: int = Field(ge=0, description="Files of its previous version no longer in it.")
