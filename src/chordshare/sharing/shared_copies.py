"""Copies in the ring of the files a node shares in place, for a sharer that wants its
files to outlive it (`--share-replicate`): each shared file is put like any file, so it gets
its k copies, and put again whenever it changes.

Off by default: sharing in place never uploads a folder on its own. A name this node has put
before is replaced by the file's new bytes; a name the network holds with other bytes that
this node never put is left alone (a warning says so, once for those bytes). What it has put
is remembered in the data directory, so a file changed while the node was down replaces its
old copies at the next start. A file removed from the folder keeps its copies in the ring,
as any file put does until `chordshare rm`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import BadName
from chordshare.sharing.client import FileClient
from chordshare.sharing.shared_dir import SharedDirectory, SharedFile
from chordshare.storage.atomic import write_atomically
from chordshare.transport.base import PeerError

log = logging.getLogger(__name__)

RECORD = "share-replicated.json"  # in the data directory: name -> SHA-256 put (hex)


class SharedCopies:
    """Puts the files of `shared` into the ring through `client()`, every `period` seconds
    for those that changed since."""

    def __init__(
        self,
        shared: SharedDirectory,
        client: Callable[[], FileClient],
        data_dir: Path,
        period: float,
    ) -> None:
        self.shared = shared
        self.client = client
        self.record = data_dir / RECORD
        self.period = period
        self.put: dict[str, str] = self._load()
        self._refused: dict[str, str] = {}  # name -> bytes the network refused: not tried again

    def _load(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {str(k): str(v) for k, v in loaded.items()}

    def _save(self) -> None:
        text = json.dumps(self.put, sort_keys=True).encode()
        write_atomically(self.record, [text])

    async def run(self) -> None:
        """Put what changed, then again every `period` seconds, until cancelled."""
        while True:
            try:
                await self.round()
            except Exception:  # a failed round must never stop the copies
                log.exception("putting the shared files into the ring failed")
            await asyncio.sleep(self.period)

    async def round(self) -> int:
        """Put every shared file whose bytes the ring does not have from this node yet;
        how many were put."""
        done = 0
        for shared in await asyncio.to_thread(self.shared.scan):
            if await self._put(shared):
                done += 1
        return done

    async def _put(self, shared: SharedFile) -> bool:
        name, digest = shared.manifest.name, shared.manifest.sha256.hex()
        if self.put.get(name) == digest or self._refused.get(name) == digest:
            return False
        try:
            outcome = await self.client().put(shared.path, name, replace=name in self.put)
        except FileError as err:
            # Another's name: other bytes it holds, or a name published by another key.
            if err.refusal in (Refusal.ALREADY_EXISTS, Refusal.PERMISSION_DENIED):
                self._refused[name] = digest
                log.warning(
                    "not copying shared %r into the ring: the network holds other bytes under "
                    "that name, which this node did not put",
                    name,
                )
            else:
                log.info("copying shared %r into the ring failed (tried again): %s", name, err)
            return False
        except (PeerError, OSError, BadName) as err:
            log.info("copying shared %r into the ring failed (tried again): %s", name, err)
            return False
        self.put[name] = outcome.manifest.sha256.hex()
        await asyncio.to_thread(self._save)
        log.info("copied shared %r into the ring (%d bytes)", name, outcome.manifest.size)
        return True
