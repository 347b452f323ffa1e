"""How a client face (the CLI, the console) reaches a ring from outside it: a NodeClient for
the node it was given, with the network's cluster token and mutual TLS, and on the same
transport the file peers and a FileClient that asks that node to look keys up.

The file side is built when first asked for, and its modules loaded then: `chordshare ring`
never loads them, and `chordshare ls` loads the peers but not the FileClient.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chordshare.transport.client import NodeClient
from chordshare.transport.security import PeerSecurity

if TYPE_CHECKING:
    from chordshare.files.manifest import Manifest
    from chordshare.files.publisher import Signer
    from chordshare.sharing.client import FileClient
    from chordshare.sharing.routes import RouteCache
    from chordshare.transport.files import FilePeers
    from chordshare.transport.files_grpc import GrpcFilePeers

log = logging.getLogger(__name__)


class Clients:
    """The clients of one face's connection to one node; `close` ends them all."""

    def __init__(self, node: NodeClient) -> None:
        self.node = node
        self._peers: GrpcFilePeers | None = None

    @classmethod
    async def open(cls, address: str, security: PeerSecurity | None = None) -> Clients:
        """Reach the node at `address`: ValueError for a malformed address, PeerError if it
        does not answer."""
        return cls(await NodeClient.connect(address, security=security or PeerSecurity()))

    @property
    def peers(self) -> GrpcFilePeers:
        """The file peers, on the node client's health records and security."""
        if self._peers is None:
            from chordshare.transport.files_grpc import GrpcFilePeers

            transport = self.node.transport
            self._peers = GrpcFilePeers(health=transport.health, security=transport.security)
        return self._peers

    def files(
        self, routes: RouteCache | None = None, signer: Signer | None = None, rate: float = 0
    ) -> FileClient:
        """A FileClient whose lookups the node does; `routes`: the owners met before, kept
        by a face that makes many FileClients; `signer`: the publisher key its puts and
        removals are signed with; `rate`: the most bytes per second its transfers move,
        sent and received together (0: no limit)."""
        from chordshare.files.placement import DEFAULT_REPLICAS
        from chordshare.sharing.client import FileClient
        from chordshare.sharing.ring import RemoteRing

        peers: FilePeers = self.peers
        if rate:
            from chordshare.sharing.throttle import PacedPeers, Throttle

            peers = PacedPeers(self.peers, Throttle(rate))
        return FileClient(RemoteRing(self.node), peers, DEFAULT_REPLICAS, routes, signer)

    async def close(self) -> None:
        if self._peers is not None:
            await self._peers.close()
        await self.node.close()


async def ask_to_keep(peers: FilePeers, address: str, manifest: Manifest) -> None:
    """Ask the node at `address`, which a get just went through, to keep a copy of the file
    it got (the node fetches it itself, and serves it to other getters). The get is done
    either way: a refusal, an older node (UNIMPLEMENTED) or one gone is only logged."""
    from chordshare.files.messages import FileError
    from chordshare.transport.base import PeerError

    try:
        outcome = await peers.at(address).keep_file(manifest.name, manifest.id)
    except (FileError, PeerError) as err:
        log.debug("%s did not take the keep of %r: %s", address, manifest.name, err)
        return
    log.debug("%s answered the keep of %r: %s", address, manifest.name, outcome.name)
