"""The REST API's token as a setting, and the file a node keeps its own in: what a node
needs to know of its API without loading the web framework (a node run with `--api off`
never does)."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


class Unauthenticated(Exception):
    """A request to a protected endpoint without the right token (answered 401)."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.message = message
        self.challenge = challenge  # the WWW-Authenticate header (RFC 6750)


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """The API's token; `None` leaves it open. Kept out of `repr` so settings can be logged."""

    token: str | None = field(default=None, repr=False)
    protect_reads: bool = False

    def __post_init__(self) -> None:
        # An empty token (an unset variable) or one with a newline (read from a file) would
        # open the API or lock everyone out without saying so.
        if self.token is not None and not (self.token and all("!" <= c <= "~" for c in self.token)):
            raise ValueError("the API token must be printable ASCII without spaces, not empty")

    def check(self, authorization: str | None) -> None:
        """Unauthenticated unless `authorization` (an Authorization header) is this token."""
        if self.token is None:
            return
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthenticated(
                "this endpoint needs the API token: send 'Authorization: Bearer <token>'",
                "Bearer",
            )
        if not hmac.compare_digest(credentials.encode("latin-1"), self.token.encode()):
            raise Unauthenticated(
                "the API token is wrong (401, as for a missing token)",
                'Bearer error="invalid_token"',
            )


OPEN = ApiAuth()  # no token: every endpoint open (`--api-open`; tests of the API itself)

TOKEN_FILE = "api-token"


def api_token_file_in(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def load_or_make_token(data_dir: Path) -> str:
    """The node's own API token: read from its data directory, or made there (readable by
    the node's user only) at its first start."""
    path = api_token_file_in(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"{path} is empty: remove it and a new token is made") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    return token
