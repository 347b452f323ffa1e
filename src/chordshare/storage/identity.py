"""A publisher's key on disk: an Ed25519 private key in a PEM file only its owner can read.

The key is what lets its holder replace or remove the files it published
(`files.publisher`); whoever reads the file can do the same, so it is written with mode
0600 in a directory of mode 0700, atomically, and never over an existing key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chordshare.files.publisher import Signer, fingerprint


class IdentityError(OSError):
    """A key file that cannot be used; the message names it and says what to do."""


def load_identity(path: Path) -> Signer:
    """The key in `path`; IdentityError when it is missing, unreadable or not a key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(
            f"no publisher key at {path}: create one with `chordshare id new {path}`"
        ) from None
    except OSError as err:
        raise IdentityError(f"cannot read the publisher key {path}: {err.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise IdentityError(f"{path} is not a chordshare publisher key (PEM, Ed25519)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path} holds a key of another kind, not Ed25519")
    return Signer(key)


def create_identity(path: Path) -> Signer:
    """A new key, written to `path` (mode 0600); IdentityError if a file is there already
    (a key overwritten is every file it published lost to its owner)."""
    signer = Signer.generate()
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # fails if a key is there: never replaced
        finally:
            temporary.unlink()
    except FileExistsError:
        raise IdentityError(f"{path} exists already: a key is never overwritten") from None
    except OSError as err:
        raise IdentityError(f"cannot write the publisher key {path}: {err.strerror}") from None
    return signer


def load_or_create(path: Path) -> tuple[Signer, bool]:
    """The key in `path`, created there first if there is no file; and whether it was."""
    if not path.exists():
        try:
            return create_identity(path), True
        except IdentityError:
            if not path.exists():
                raise
            # Another process created it meanwhile: use that one.
    return load_identity(path), False


def describe_key(signer: Signer) -> str:
    return f"key {fingerprint(signer.publisher)}"
