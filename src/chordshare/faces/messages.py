"""The one line a client face (the CLI, the console) says for each failure it expects: a
peer that cannot be reached or fails, a node's refusal, a bad name, a download that could
not be had, bad input, this machine's own files. Any other exception is a bug, and keeps
its traceback.

The REST API answers the same failures with its own statuses (`api_errors`) and the same
words where it has them (`peer_failure`).
"""

from __future__ import annotations

import sys

from chordshare.files.messages import FileError
from chordshare.files.names import printable
from chordshare.transport.base import PeerError

DOWNLOADS = "chordshare.sharing.download"


def unreachable(err: PeerError) -> str:
    """A node that could not be reached at all, when first asked."""
    return f"cannot reach {err.address}: {err.reason}"


def peer_failure(err: PeerError) -> str:
    """A call to a reached node that failed later."""
    return f"{err.address}: {err.reason}"


def local_failure(err: OSError) -> str:
    """This machine's own files: no such file to put, a disk full, not allowed."""
    if err.filename:
        return f"{printable(str(err.filename))}: {err.strerror or err}"
    return err.strerror or str(err)


def _download_failed(err: Exception) -> bool:
    # Only a download raises DownloadError, and a command that downloads has loaded its
    # module: asking sys.modules keeps the commands that never download from loading it.
    downloads = sys.modules.get(DOWNLOADS)
    return downloads is not None and isinstance(err, downloads.DownloadError)


def describe(err: Exception) -> str | None:
    """The line for an expected failure; None for one that is not expected."""
    if isinstance(err, PeerError):
        return peer_failure(err)
    if isinstance(err, FileError):  # a peer's message: it may quote a name raw
        return printable(err.message)
    if isinstance(err, OSError):
        return local_failure(err)
    if isinstance(err, ValueError) or _download_failed(err):
        return printable(str(err))
    return None
