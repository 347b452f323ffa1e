"""One Kademlia node for the latency benchmark's reference (kademlia 2.2.3, the Python
library, with its defaults: k = 20, alpha = 3, UDP with msgpack through rpcudp, the stock
asyncio event loop).

    python bench/kademlia_node.py [--bootstrap HOST:PORT]

Listens on a free UDP port of 127.0.0.1, joins the network through `--bootstrap` (the
library's own bootstrap: a ping, then a node lookup of its own id), then prints
`kademlia node ID serving at 127.0.0.1:PORT` and serves until killed.

Besides the library's RPCs it answers three more, for the measuring process only (they do
not touch the routing table, so the measurer never becomes a contact):

- `bench_lookup(key)`: an iterative node lookup of the 20-byte `key` from this node's own
  routing table (the library's `NodeSpiderCrawl`, as `Server.set` runs it before storing):
  rounds of `find_node` calls to the alpha closest contacts not yet asked, until the k
  closest have all answered. Nothing is read from a local store or cache: every lookup
  sends its `find_node` calls over the network. Answers [the id of the closest node found,
  this node included; rounds that sent at least one call; calls sent; seconds it took];
- `bench_contacts()`: how many contacts the routing table holds;
- `bench_echo()`: nothing, at once (a bare round trip, the yardstick).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from kademlia.crawling import NodeSpiderCrawl  # type: ignore[import-untyped]
from kademlia.network import Server  # type: ignore[import-untyped]
from kademlia.node import Node  # type: ignore[import-untyped]
from kademlia.protocol import KademliaProtocol  # type: ignore[import-untyped]

HOST = "127.0.0.1"
ALPHA = 3


class CountingCrawl(NodeSpiderCrawl):  # type: ignore[misc]
    """The library's node lookup, counting its rounds and calls."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.round = 0
        self.rounds_with_calls: set[int] = set()
        self.calls = 0

    async def find(self) -> Any:
        self.round += 1
        return await self._find(self._call)

    async def _call(self, peer: Any, node: Any) -> Any:
        self.calls += 1
        self.rounds_with_calls.add(self.round)
        return await self.protocol.call_find_node(peer, node)


class BenchProtocol(KademliaProtocol):  # type: ignore[misc]
    async def rpc_bench_lookup(self, sender: Any, key: bytes) -> list[Any]:
        started = time.perf_counter()
        target = Node(key)
        nearest = self.router.find_neighbors(target)
        crawl = CountingCrawl(self, target, nearest, self.router.ksize, ALPHA)
        found = await crawl.find()
        best = min([*found, self.source_node], key=lambda n: n.distance_to(target))
        took = time.perf_counter() - started
        return [best.id, len(crawl.rounds_with_calls), crawl.calls, took]

    def rpc_bench_contacts(self, sender: Any) -> int:
        return sum(len(bucket) for bucket in self.router.buckets)

    def rpc_bench_echo(self, sender: Any) -> bool:
        return True


class BenchServer(Server):  # type: ignore[misc]
    protocol_class = BenchProtocol


async def serve(bootstrap: str | None) -> None:
    server = BenchServer(alpha=ALPHA)
    await server.listen(0, HOST)
    port = server.transport.get_extra_info("sockname")[1]
    if bootstrap:
        host, _, peer_port = bootstrap.rpartition(":")
        await server.bootstrap([(host, int(peer_port))])
    print(f"kademlia node {server.node.long_id} serving at {HOST}:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="HOST:PORT of a node to join through")
    asyncio.run(serve(parser.parse_args().bootstrap))


if __name__ == "__main__":
    main()
