"""Who may change a name: the publisher's key, and the signature every version carries.

A version (a put or a removal) is signed with an Ed25519 key over what it says: the name,
the version, and the bytes (`content_digest`: their size, chunk size and every chunk's
SHA-256, which the whole-file hash is checked against) or that it removes them. A removal's
signature is checked wherever it travels; a put's wherever its manifest does (a put, a
copy pushed by a peer), and where only its version is offered, its publisher is.

A name belongs to the key that first published it: a later version must be signed by that
key, or by one of the admin keys a node's settings list. Every holder checks that on every
path a version arrives by, so a member of the ring cannot replace or remove a file by
passing on a version it made up.

The version is signed too, so a version once published cannot be passed on again as a newer
one: it keeps its place in the order (`files.versions`) and loses to what replaced it.
Versions stored before signatures existed carry none: anyone may replace or remove them,
and a signed version that does so claims the name.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chordshare.files.names import conflict_of

KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_PREFIX = "ed25519:"
STATEMENT_TAG = b"chordshare version 1\n"  # changes if the signed encoding ever does
# How far ahead of a node's clock a signed version may be: a client's clock that runs
# fast would otherwise hold the name above every later put for as long.
MAX_AHEAD = 600.0


@dataclass(frozen=True, slots=True)
class Claim:
    """Who published a version (a raw Ed25519 public key) and their signature of it."""

    publisher: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.publisher) != KEY_BYTES or len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(
                f"a signature is {SIGNATURE_BYTES} bytes by a {KEY_BYTES}-byte Ed25519 key"
            )


CONTENT_TAG = b"chordshare content 1\n"


def content_digest(size: int, chunk_size: int, chunks: Sequence[bytes]) -> bytes:
    """What a put's signature says of its bytes: known to a client before the whole-file
    hash is (a large put leaves that to the owner), and fixing them all the same."""
    head = CONTENT_TAG + struct.pack(">QI", size, chunk_size)
    return hashlib.sha256(head + b"".join(chunks)).digest()


def statement(name: str, version: float, content: bytes, deleted: bool) -> bytes:
    """The bytes a publisher signs (`content`: a put's `content_digest`, empty for a
    removal). A conflict copy (`names.conflict_name`) keeps the signature of the version it
    was: it is checked under the name that version had."""
    signed_name = conflict_of(name) or name
    kind = b"R" if deleted else b"P"
    digest = b"" if deleted else content
    return b"".join((STATEMENT_TAG, kind, struct.pack(">d", version), digest, signed_name.encode()))


def verifies(claim: Claim, name: str, version: float, content: bytes, deleted: bool) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(claim.publisher).verify(
            claim.signature, statement(name, version, content, deleted)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


class Signer:
    """A publisher's private key, signing the versions it publishes."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.publisher = key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, name: str, version: float, content: bytes, deleted: bool = False) -> Claim:
        signature = self.key.sign(statement(name, version, content, deleted))
        return Claim(self.publisher, signature)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.publisher)


def fingerprint(publisher: bytes) -> str:
    """A key's short name for people: the first 8 bytes of its SHA-256, in hex pairs."""
    digest = hashlib.sha256(publisher).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


def key_text(publisher: bytes) -> str:
    """A public key as settings and people write it: `ed25519:` and its base64."""
    return KEY_PREFIX + base64.urlsafe_b64encode(publisher).decode().rstrip("=")


def parse_key_text(text: str) -> bytes:
    """The raw key `key_text` wrote; ValueError saying what is wrong otherwise."""
    body = text.strip()
    if not body.startswith(KEY_PREFIX):
        raise ValueError(f"{text!r} is not a public key: it starts with {KEY_PREFIX!r}")
    body = body[len(KEY_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise ValueError(f"{text!r} is not a public key: bad base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{text!r} is not a public key: {len(raw)} bytes, not {KEY_BYTES}")
    return raw


class Signed(Protocol):
    """What the authority decision needs of a version (a `FileVersion`): its claim and
    what it signs."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> float: ...
    @property
    def sha256(self) -> bytes: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def claim(self) -> Claim | None: ...


def why_refused(
    held: Signed | None,
    offered: Signed,
    admins: frozenset[bytes] = frozenset(),
    content: bytes | None = None,
) -> str | None:
    """Why `offered` may not take the place of what is `held` of its name, or None when
    it may: its signature must hold (a put's is checked when its `content` is known), and
    a name whose version is signed changes only by a version its publisher (or an admin
    key) signed."""
    claim = offered.claim
    checkable = offered.deleted or content is not None
    if (
        claim is not None
        and checkable
        and not verifies(claim, offered.name, offered.version, content or b"", offered.deleted)
    ):
        return f"the signature of this version of {offered.name!r} does not match it"
    if held is None or held.claim is None:
        return None
    owner = held.claim.publisher
    if claim is None:
        return (
            f"{offered.name!r} belongs to key {fingerprint(owner)}: a change must be signed "
            "by that key"
        )
    if claim.publisher != owner and claim.publisher not in admins:
        return (
            f"{offered.name!r} belongs to key {fingerprint(owner)}, not to "
            f"{fingerprint(claim.publisher)}: only its publisher (or an admin key) may "
            "replace or remove it"
        )
    return None
