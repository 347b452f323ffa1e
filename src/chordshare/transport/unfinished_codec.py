"""An unfinished put (`files.unfinished`) on the wire: FindFileReply.unfinished, the answer
a putter asks for with FindFileRequest.unfinished."""

from __future__ import annotations

from chordshare.files.unfinished import UnfinishedPut
from chordshare.v1 import files_pb2 as pb


def unfinished_to_pb(record: UnfinishedPut) -> pb.UnfinishedPut:
    return pb.UnfinishedPut(
        size=record.size,
        chunk_size=record.chunk_size,
        indexes=[index for index, _ in record.held],
        chunks=[digest for _, digest in record.held],
    )


def unfinished_from_pb(reply: pb.FindFileReply, name: str) -> UnfinishedPut | None:
    """The unfinished put of `name` a FindFile answer names, if any; ValueError when it
    contradicts itself. Its time is the owner's: a putter needs only the chunks."""
    if not reply.HasField("unfinished"):
        return None
    msg = reply.unfinished
    if len(msg.indexes) != len(msg.chunks):
        raise ValueError(
            f"an unfinished put lists {len(msg.indexes)} chunks and {len(msg.chunks)} hashes"
        )
    held = tuple(zip(msg.indexes, (bytes(c) for c in msg.chunks), strict=True))
    record = UnfinishedPut(name, msg.size, msg.chunk_size, held, 0.0)
    record.check()
    return record
