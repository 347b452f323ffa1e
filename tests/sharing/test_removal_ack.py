"""A removal is confirmed only once another holder has it: were the owner to crash right
after answering, the copies the others hold would bring the name back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chordshare.chord.messages import NodeRef
from chordshare.files.messages import FileError, FileVersion, PutHeader, Refusal
from chordshare.ids import IdSpace
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.client import FileClient
from chordshare.sharing.service import FileService
from chordshare.storage.store import NodeStore


class Told:
    """An announcer whose removals `answers` holders took, call after call."""

    def __init__(self, *answers: int | None) -> None:
        self.answers = list(answers)
        self.told: list[FileVersion] = []

    async def announce(self, version: FileVersion) -> int | None:
        self.told.append(version)
        return self.answers.pop(0)


async def one_chunk(data: bytes) -> AsyncIterator[tuple[int, bytes]]:
    yield 0, data


async def stored(service: FileService, name: str) -> None:
    data = b"kept for now"
    await service.put_file(PutHeader(manifest_of(data, name, 1024)), one_chunk(data))


async def test_a_removal_no_other_holder_took_is_refused_and_kept(tmp_path: Path) -> None:
    told = Told(0, 1)
    service = FileService("10.0.0.1:7000", NodeStore(tmp_path), announcer=told)
    await stored(service, "draft.txt")
    with pytest.raises(FileError) as refused:
        await service.delete("draft.txt")
    assert refused.value.refusal is Refusal.UNAVAILABLE
    assert "remove it again" in refused.value.message
    # The removal stands here, and is offered again on the next try.
    assert service.store.manifest("draft.txt") is None
    assert service.store.catalog.tombstone("draft.txt") is not None
    assert await service.delete("draft.txt") is False
    assert [v.deleted for v in told.told] == [True, True]


async def test_a_node_alone_confirms_its_own_removals(tmp_path: Path) -> None:
    service = FileService("10.0.0.1:7000", NodeStore(tmp_path), announcer=Told(None))
    await stored(service, "alone.txt")
    assert await service.delete("alone.txt") is True


class OneNodeRing:
    space = IdSpace(8)

    async def owner(self, key: int) -> NodeRef:
        return NodeRef(1, "10.0.0.1:7000")


class Peers:
    def __init__(self, service: FileService) -> None:
        self.service = service

    def at(self, address: str) -> FileService:
        return self.service

    async def close(self) -> None:
        return None


async def test_a_client_removes_again_until_another_holder_has_it(tmp_path: Path) -> None:
    service = FileService("10.0.0.1:7000", NodeStore(tmp_path), announcer=Told(0, 2))
    await stored(service, "notes.txt")
    client = FileClient(OneNodeRing(), Peers(service))  # type: ignore[arg-type]
    await client.remove("notes.txt")  # the second try is confirmed; no "no such file"
    other = FileService("10.0.0.1:7000", NodeStore(tmp_path / "other"), announcer=Told(1))
    with pytest.raises(FileError) as missing:
        await FileClient(OneNodeRing(), Peers(other)).remove("never.txt")  # type: ignore[arg-type]
    assert missing.value.refusal is Refusal.NOT_FOUND
