"""Chunk messages coded without protobuf's copies read and write exactly what protobuf does."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from google.protobuf.wrappers_pb2 import UInt64Value
from hypothesis import given
from hypothesis import strategies as st

from chordshare.transport.chunk_wire import (
    VIEW_OVER,
    Chunk,
    decode_chunk,
    decode_put_request,
    encode_chunk,
    encode_put_request,
)
from chordshare.v1 import files_pb2 as pb

uint32 = st.integers(min_value=0, max_value=2**32 - 1)
payloads = st.binary(max_size=300)
# Some long enough to come back as views.
sized_payloads = st.tuples(st.sampled_from([0, VIEW_OVER - 300, VIEW_OVER]), payloads).map(
    lambda t: bytes(t[0]) + t[1]
)


def varint(value: int) -> bytes:
    """value as a protobuf varint, by protobuf itself: field 1 of a UInt64Value without
    its tag (proto3 writes nothing for 0)."""
    return UInt64Value(value=value).SerializeToString()[1:] or b"\x00"


# Fields of a chunk message as any protobuf writer might lay them out: ours, repeated,
# reordered, unknown ones, an index too large for uint32 (protobuf truncates it).
index_field = st.integers(min_value=0, max_value=2**64 - 1).map(lambda i: b"\x08" + varint(i))
data_field = payloads.map(lambda d: b"\x12" + varint(len(d)) + d)
unknown_field = st.one_of(
    st.integers(min_value=0, max_value=2**20).map(lambda v: b"\x18" + varint(v)),
    payloads.map(lambda d: b"\x22" + varint(len(d)) + d),
)
chunk_layouts = st.lists(st.one_of(index_field, data_field, unknown_field), max_size=5).map(
    b"".join
)


def as_bytes(chunk: Chunk) -> tuple[int, bytes]:
    return chunk.index, bytes(chunk.data)


@given(uint32, sized_payloads)
def test_a_chunk_is_written_as_protobuf_writes_it(index: int, data: bytes) -> None:
    assert (
        encode_chunk(Chunk(index, data)) == pb.ChunkData(index=index, data=data).SerializeToString()
    )
    put = pb.PutRequest(chunk=pb.PutChunk(index=index, data=data))
    assert encode_put_request(Chunk(index, data)) == put.SerializeToString()


def is_view_into(data: object, raw: bytes) -> bool:
    return isinstance(data, memoryview) and data.obj is raw and data.readonly


@given(uint32, sized_payloads)
def test_protobufs_layout_is_read_without_copying_long_data(index: int, data: bytes) -> None:
    raw = pb.ChunkData(index=index, data=data).SerializeToString()
    chunk = decode_chunk(raw)
    assert as_bytes(chunk) == (index, data)
    # Long data is not copied; short data is bytes of its own (it may be kept).
    assert is_view_into(chunk.data, raw) == (len(data) > VIEW_OVER)
    assert isinstance(chunk.data, bytes) == (len(data) <= VIEW_OVER)
    raw_put = pb.PutRequest(chunk=pb.PutChunk(index=index, data=data)).SerializeToString()
    part = decode_put_request(raw_put)
    assert isinstance(part, Chunk) and as_bytes(part) == (index, data)
    assert is_view_into(part.data, raw_put) == (len(data) > VIEW_OVER)


@given(chunk_layouts)
def test_any_other_layout_reads_as_protobuf_reads_it(raw: bytes) -> None:
    expected = pb.ChunkData.FromString(raw)
    assert as_bytes(decode_chunk(raw)) == (expected.index, expected.data)
    wrapped = b"\x12" + varint(len(raw)) + raw
    part = decode_put_request(wrapped)
    assert isinstance(part, Chunk)
    assert as_bytes(part) == (expected.index, expected.data)


def protobuf_reading(parse: object, raw: bytes) -> object:
    try:
        return parse(raw)  # type: ignore[operator]
    except DecodeError:
        return DecodeError


@given(st.binary(max_size=64))
def test_bytes_protobuf_refuses_are_refused(raw: bytes) -> None:
    expected = protobuf_reading(pb.ChunkData.FromString, raw)
    if expected is DecodeError:
        with pytest.raises(DecodeError):
            decode_chunk(raw)
    else:
        assert isinstance(expected, pb.ChunkData)
        assert as_bytes(decode_chunk(raw)) == (expected.index, expected.data)
    request = protobuf_reading(pb.PutRequest.FromString, raw)
    if request is DecodeError:
        with pytest.raises(DecodeError):
            decode_put_request(raw)
        return
    assert isinstance(request, pb.PutRequest)
    part = decode_put_request(raw)
    if request.WhichOneof("part") == "chunk":
        assert isinstance(part, Chunk)
        assert as_bytes(part) == (request.chunk.index, request.chunk.data)
    else:
        assert part == request


def test_a_put_header_passes_as_its_request() -> None:
    header = pb.PutRequest(header=pb.PutHeader(manifest=pb.Manifest(name="a.txt", size=3)))
    assert encode_put_request(header) == header.SerializeToString()
    assert decode_put_request(header.SerializeToString()) == header
    # A truncated chunk message is not a chunk: protobuf's error, not a short chunk.
    raw = encode_put_request(Chunk(1, b"abcdef"))
    with pytest.raises(DecodeError):
        decode_put_request(raw[:-1])
