"""Links: one line that names a file's exact bytes, its name, and a few ways into the ring.

    chordshare://<manifest id, 64 hex digits>/<name, percent-encoded>?via=HOST:PORT&via=...

The manifest id (`Manifest.id`) is the SHA-256 of what the manifest says of the bytes: a
get that follows a link checks that the manifest it finds has that id, and every chunk
against that manifest, so a link fetches those bytes or nothing. The name says where to look
(the name's key) and what to call the file; the `via` addresses are nodes to ask first, so
a link works from a machine that knows nothing else of the ring. A link carries no secret:
a ring with a cluster token is open through it only to those who hold the token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from chordshare.files.names import BadName, check_stored_name

SCHEME = "chordshare"
# How long a holder keeps a version a replace or removal took the name from, so that links
# to it keep working a while: a day.
LINK_GRACE = 24 * 3600.0
MAX_VIA = 8  # bootstrap addresses a link carries, at most
MAX_LINK = 4096  # characters: far more than any link this module writes
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


class BadLink(ValueError):
    """Text that is not a chordshare link; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Link:
    manifest_id: bytes  # the 32-byte id of the manifest of the bytes linked to
    name: str
    via: tuple[str, ...]  # HOST:PORT of nodes to ask first

    def __str__(self) -> str:
        query = "&".join(f"via={quote(address, safe=':[]')}" for address in self.via)
        path = quote(self.name, safe="")
        return f"{SCHEME}://{self.manifest_id.hex()}/{path}" + (f"?{query}" if query else "")


def make_link(manifest_id: bytes, name: str, via: Sequence[str]) -> Link:
    """A link to the bytes `manifest_id` names, under `name`, through up to MAX_VIA of the
    addresses (the first ones: put the best known first)."""
    if len(manifest_id) != 32:
        raise ValueError("a manifest id is 32 bytes")
    return Link(manifest_id, name, tuple(dict.fromkeys(via))[:MAX_VIA])


def looks_like_link(text: str) -> bool:
    """Whether a get's target is meant as a link (and must then parse as one)."""
    return text.startswith(f"{SCHEME}:")


def parse_link(text: str) -> Link:
    """The link in `text`; BadLink naming the first thing that is wrong with it."""
    text = text.strip()
    if len(text) > MAX_LINK:
        raise BadLink(f"a link is at most {MAX_LINK} characters, this one has {len(text)}")
    if not looks_like_link(text):
        raise BadLink(f"a link starts with {SCHEME}://")
    try:
        parts = urlsplit(text)
    except ValueError as err:
        raise BadLink(f"not a link: {err}") from None
    if parts.scheme != SCHEME or not text.startswith(f"{SCHEME}://"):
        raise BadLink(f"a link starts with {SCHEME}://")
    if not _HEX_ID.fullmatch(parts.netloc):
        raise BadLink(
            "the link's file id must be 64 hexadecimal digits (the link may be cut short: "
            "copy all of it)"
        )
    try:
        name = unquote(parts.path[1:], errors="strict") if parts.path.startswith("/") else ""
    except UnicodeDecodeError:
        raise BadLink("the link's file name is not UTF-8 text") from None
    if not name:
        raise BadLink("the link names no file (the link may be cut short: copy all of it)")
    try:
        check_stored_name(name)
    except BadName as err:
        raise BadLink(f"the link's file name is not one a file can have: {err}") from None
    via = []
    for address in parse_qs(parts.query, keep_blank_values=True).get("via", []):
        found = _ADDRESS.fullmatch(address)
        if found is None or not 0 < int(found[2]) <= 65535:
            raise BadLink(f"the link's address {address!r} is not HOST:PORT")
        via.append(address)
    if not via:
        raise BadLink("the link names no node to ask (via=HOST:PORT)")
    if len(via) > MAX_VIA:
        raise BadLink(f"a link names at most {MAX_VIA} nodes, this one {len(via)}")
    return Link(bytes.fromhex(parts.netloc), name, tuple(via))
