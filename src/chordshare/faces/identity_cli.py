"""`chordshare id`: the publisher key a user's puts and removals are signed with, and the
option that picks it (`--identity FILE`, `CHORDSHARE_IDENTITY`).

A name belongs to the key that first published it (`files.publisher`): keep the key, and
keep it to yourself. Without one, the first put creates it in the user's config directory
and says where.
"""

# No `from __future__ import annotations`: see cli_app.

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chordshare.faces.cli_app import JsonOption, fail, print_json
from chordshare.faces.render import err_console, out

if TYPE_CHECKING:
    from chordshare.files.publisher import Signer

IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        envvar="CHORDSHARE_IDENTITY",
        help="Your publisher key (default: identity.pem in your config directory, "
        "created by the first put).",
    ),
]

id_app = typer.Typer(
    help="Your publisher key: what lets you, and only you, replace or remove your files.",
    no_args_is_help=True,
)


def default_identity() -> Path:
    """identity.pem in the user's config directory ($XDG_CONFIG_HOME, else ~/.config)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "chordshare" / "identity.pem"


def publisher(identity: Path | None, create: bool = True) -> "Signer | None":
    """The key to sign with: the one given (which must exist), else the default one,
    created on first use with a line saying where (not without `create`: None then)."""
    from chordshare.files.publisher import key_text
    from chordshare.storage.identity import IdentityError, load_identity, load_or_create

    try:
        if identity is not None:
            return load_identity(identity)
        path = default_identity()
        if not create and not path.exists():
            return None
        signer, created = load_or_create(path)
    except IdentityError as err:
        fail(str(err))
    if created:
        err_console.print(
            f"created your publisher key {signer.fingerprint} at {path} "
            f"({key_text(signer.publisher)}): only it can replace or remove what you put; "
            "keep it, and keep it to yourself",
            highlight=False,
            markup=False,
        )
    return signer


@id_app.command("new")
def new(
    file: Annotated[
        Path | None,
        typer.Argument(help="Where to write it (default: identity.pem in your config directory)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a publisher key (mode 0600); an existing key is never overwritten."""
    from chordshare.storage.identity import create_identity

    _show(file, create_identity, as_json)


@id_app.command("show")
def show(identity: IdentityOption = None, as_json: JsonOption = False) -> None:
    """Print your publisher key: its fingerprint (what `ls` shows) and public key (what a
    node's --admin-key takes)."""
    from chordshare.storage.identity import load_identity

    _show(identity, load_identity, as_json)


def _show(given: Path | None, open_key: Callable[[Path], "Signer"], as_json: bool) -> None:
    """Open (or make) the key at `given` (default: the user's), and print what it is."""
    from chordshare.files.publisher import key_text
    from chordshare.storage.identity import IdentityError

    path = given if given is not None else default_identity()
    try:
        signer = open_key(path)
    except IdentityError as err:
        fail(str(err))
    public = key_text(signer.publisher)
    if as_json:
        print_json({"path": str(path), "fingerprint": signer.fingerprint, "public_key": public})
        return
    out.print(f"{signer.fingerprint}  {public}  ({path})", highlight=False, markup=False)
