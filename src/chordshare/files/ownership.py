"""Who may answer for a name: only its key's owner judges a put or says a name is missing."""

from __future__ import annotations

from chordshare.files.messages import FileError, Refusal


def refuse_unless_owner(address: str, owns: bool | None, name: str) -> None:
    """For a request sent to `address` as the guessed owner of name: the sender's view of
    the ring may be old, so a node that does not own the key refuses and does nothing.
    `owns` None: the node cannot say yet (it was paused and is checking its neighbours),
    so the sender asks again in a moment."""
    if owns is None:
        raise FileError(
            Refusal.UNAVAILABLE,
            f"{address} was paused and is checking its neighbours; ask again in a moment",
        )
    if not owns:
        raise FileError(
            Refusal.OUT_OF_RANGE, f"{address} does not own the key of {name!r}; look its owner up"
        )
