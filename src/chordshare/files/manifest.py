"""What a file is: its manifest, the hash of every chunk and of the whole, and the id that
names those exact bytes."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from chordshare.files.publisher import Claim, content_digest

DIGEST_BYTES = 32  # SHA-256
MAX_CHUNKS = 1 << 18  # per manifest: 8 MiB of hashes, a 256 GiB file in 1 MiB chunks


MANIFEST_ID_TAG = b"chordshare manifest 1\n"  # changes if the encoding ever does


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a file is: its name, size, whole-file SHA-256 and the SHA-256 of each chunk."""

    name: str
    size: int
    sha256: bytes
    chunk_size: int
    chunks: tuple[bytes, ...]
    created: float
    # Who published this version, and their signature of it (None: not signed).
    claim: Claim | None = None

    @property
    def id(self) -> bytes:
        """The SHA-256 of the manifest's canonical encoding: what it says of the bytes
        (size, chunk size, the whole file's and every chunk's hash), not the name they are
        stored under nor its version. Two manifests with one id name the same bytes."""
        encoded = b"".join(
            (MANIFEST_ID_TAG, struct.pack(">QI", self.size, self.chunk_size), self.sha256)
        )
        return hashlib.sha256(encoded + b"".join(self.chunks)).digest()

    @property
    def content(self) -> bytes:
        """What a signature of this version says of its bytes (`files.publisher`)."""
        return content_digest(self.size, self.chunk_size, self.chunks)

    @property
    def chunk_count(self) -> int:
        """How many chunks the file's size makes (a promised manifest lists none yet)."""
        return -(-self.size // self.chunk_size)

    def chunk_length(self, index: int) -> int:
        """Bytes in chunk `index` (the last one may be short)."""
        start = index * self.chunk_size
        return max(0, min(self.chunk_size, self.size - start))

    def check(self, whole_hash_optional: bool = False) -> None:
        """Raise ValueError when the manifest contradicts itself. With
        `whole_hash_optional`, its sha256 may be empty (a client's put, before the owner
        computed it)."""
        if self.size < 0 or self.chunk_size <= 0:
            raise ValueError("size must be >= 0 and chunk size > 0")
        expected = self.chunk_count
        if len(self.chunks) != expected:
            raise ValueError(
                f"a {self.size}-byte file in {self.chunk_size}-byte chunks has {expected} "
                f"chunks, the manifest lists {len(self.chunks)}"
            )
        whole_ok = len(self.sha256) == DIGEST_BYTES or (whole_hash_optional and not self.sha256)
        if not whole_ok or any(len(c) != DIGEST_BYTES for c in self.chunks):
            raise ValueError("hashes must be SHA-256 digests (32 bytes)")
