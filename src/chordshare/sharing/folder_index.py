"""What the owner of a folder's manifest publishes to the index besides the manifest's own
records: the files packed in the folder (`files.packs`), which have no file of their own
to be found by, each under its path in the folder. A folder's packs are found through its
manifest, never by a search."""

from __future__ import annotations

import logging

from chordshare.files.folders import BadFolder, decode, folder_of, member_name
from chordshare.files.manifest import Manifest
from chordshare.files.messages import IndexEntry, IndexRecord
from chordshare.files.packs import is_pack_name
from chordshare.files.search import index_records, packed_records
from chordshare.storage.chunks import ChunkError
from chordshare.storage.store import NodeStore

log = logging.getLogger(__name__)


class FolderIndex:
    """A stored file's index records, those of a folder's packed files read once per
    version of its manifest."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self._packed: dict[bytes, list[IndexRecord]] = {}  # by folder manifest id

    def records(self, manifest: Manifest) -> list[IndexRecord]:
        """The index records of a stored file (blocking: may read a folder's manifest)."""
        if is_pack_name(manifest.name):
            return []
        folder = folder_of(manifest.name)
        if folder is None:
            return index_records(manifest)
        packed = self._packed.get(manifest.id)
        if packed is None:
            packed = self._read_packed(folder, manifest)
            if packed is not None:
                self._packed[manifest.id] = packed
        return index_records(manifest) + (packed or [])

    def records_of(self, manifests: list[Manifest]) -> dict[str, list[IndexRecord]]:
        return {manifest.name: self.records(manifest) for manifest in manifests}

    def keep_only(self, manifests: list[Manifest]) -> None:
        """Forget the folders' records of versions no longer stored here."""
        ids = {m.id for m in manifests}
        for gone in set(self._packed) - ids:
            del self._packed[gone]

    def _read_packed(self, folder: str, manifest: Manifest) -> list[IndexRecord] | None:
        """The records of its packed files; None while a chunk of it is missing or
        damaged here (read again next time: repair brings the chunk back)."""
        try:
            data = b"".join(self.store.read_chunk(digest) for digest in manifest.chunks)
        except ChunkError as err:
            log.warning("the manifest of folder %r is not indexed yet: %s", folder, err)
            return None
        try:
            entries = decode(data, folder).files
        except BadFolder as err:
            log.warning("the manifest of folder %r is not indexed: %s", folder, err)
            return []
        records: list[IndexRecord] = []
        for entry in entries:
            if entry.pack is not None:
                name = member_name(folder, entry.path)
                records += packed_records(IndexEntry(name, entry.size, entry.sha256), entry.path)
        return records
