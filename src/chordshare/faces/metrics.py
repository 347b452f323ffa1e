"""Prometheus metrics of a peer, served at /metrics by its REST API.

A collector reads the plain counts the node keeps (`ChordNode.stats`, the transports'
`stats` and `bytes`, the store) when it is scraped, so nothing below the faces depends on
prometheus-client, and several peers in one process each have their own registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.throttle import NodeRates
from chordshare.transport.stats import CallStats


def ring_size_estimate(peer: SharingPeer) -> float:
    """N from how densely the successor list covers the ring: r successors span about
    r / N of it."""
    node = peer.server.node
    if node is None:
        return 0.0
    listed = node.state.successors
    distinct = {s.address for s in listed}
    if node.me.address in distinct or len(distinct) < node.state.r:
        # A list shorter than r (or back at this node) spans the whole ring: it names
        # every other node, so count them.
        return float(len(distinct | {node.me.address}))
    successors = [s for s in listed if s.id != node.me.id]
    if not successors:
        return 1.0
    span = node.space.distance(node.me.id, successors[-1].id)
    return len(successors) * node.space.size / span if span else 1.0


class PeerCollector(Collector):
    def __init__(self, peer: SharingPeer) -> None:
        self.peer = peer

    def collect(self) -> Iterator[Metric]:
        peer, node = self.peer, self.peer.server.node
        if node is None:
            return
        hops = node.stats.hops
        lookups = HistogramMetricFamily(
            "chordshare_lookup_hops", "Lookups this node made, by the hops they took"
        )
        running, buckets = 0, []
        for bound in range(0, max(hops, default=0) + 1):
            running += hops.get(bound, 0)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", running))
        lookups.add_metric([], buckets, sum(h * c for h, c in hops.items()))
        yield lookups
        yield CounterMetricFamily(
            "chordshare_lookup_failures",
            "Lookups that found no live owner",
            value=node.stats.lookup_failures,
        )
        failures = CounterMetricFamily(
            "chordshare_maintenance_failures", "Maintenance rounds that failed", labels=["loop"]
        )
        for loop, count in sorted(node.stats.maintenance_failures.items()):
            failures.add_metric([loop], count)
        yield failures
        yield CounterMetricFamily(
            "chordshare_stabilize_failures",
            "Stabilize rounds that found the successor dead and moved past it",
            value=node.stats.stabilize_failures,
        )
        yield CounterMetricFamily(
            "chordshare_successor_changes",
            "Times stabilize moved this node's successor (a node joined or failed)",
            value=node.stats.successor_changes,
        )
        yield from _rpc_metrics(node.transport.stats)  # type: ignore[attr-defined]
        if peer.peers is not None:
            moved = CounterMetricFamily(
                "chordshare_peer_bytes", "File bytes moved with each peer", labels=["peer", "way"]
            )
            for address, count in sorted(peer.peers.bytes.received.items()):
                moved.add_metric([address, "in"], count)
            for address, count in sorted(peer.peers.bytes.sent.items()):
                moved.add_metric([address, "out"], count)
            yield moved
        if peer.service is not None:
            served = CounterMetricFamily(
                "chordshare_served_bytes",
                "Chunk bytes this node served or received",
                labels=["way"],
            )
            served.add_metric(["out"], peer.service.bytes_served)
            served.add_metric(["in"], peer.service.bytes_received)
            yield served
        yield from _rate_metrics(peer.rates)
        if peer.scrubber is not None:
            counts = peer.scrubber.counts
            yield CounterMetricFamily(
                "chordshare_scrub_checked_bytes",
                "Bytes of stored chunks read again and checked against their hashes",
                value=counts.checked_bytes,
            )
            chunks = CounterMetricFamily(
                "chordshare_scrub_bad_chunks",
                "Stored chunks found damaged or missing, by what became of them",
                labels=["outcome"],
            )
            chunks.add_metric(["healed"], counts.healed)
            chunks.add_metric(["unhealed"], counts.unhealed)
            yield chunks
        yield GaugeMetricFamily(
            "chordshare_stored_files",
            "Files in this node's store",
            value=len(peer.store.manifests()),
        )
        yield GaugeMetricFamily(
            "chordshare_stored_bytes", "Bytes in this node's store", value=peer.store.used_bytes()
        )
        unfinished = peer.store.unfinished_puts()
        yield GaugeMetricFamily(
            "chordshare_unfinished_puts",
            "Puts cut off before their end whose chunks this node keeps for a rerun",
            value=len(unfinished),
        )
        yield GaugeMetricFamily(
            "chordshare_unfinished_put_bytes",
            "Bytes this node keeps of puts cut off before their end (counted in its store)",
            value=sum(record.held_bytes for record in unfinished),
        )
        yield GaugeMetricFamily(
            "chordshare_ring_size_estimate",
            "Nodes on the ring, estimated from the spacing of the successor list",
            value=ring_size_estimate(peer),
        )


def _rate_metrics(rates: NodeRates) -> Iterator[Metric]:
    """The node's caps (`--max-upload-rate`, ...), what moved under each, and how long
    transfers waited for them."""
    kinds = sorted(rates.by_kind().items())
    limits = GaugeMetricFamily(
        "chordshare_rate_limit_bytes_per_second",
        "The node's cap on file bytes per second, by traffic (0: no limit)",
        labels=["traffic"],
    )
    moved = CounterMetricFamily(
        "chordshare_rate_limited_bytes",
        "File bytes moved under each of the node's caps, by traffic",
        labels=["traffic"],
    )
    waited = CounterMetricFamily(
        "chordshare_rate_limit_wait_seconds",
        "Seconds transfers waited for the node's caps, summed over transfers, by traffic",
        labels=["traffic"],
    )
    for kind, throttle in kinds:
        limits.add_metric([kind], throttle.rate)
        moved.add_metric([kind], throttle.moved)
        waited.add_metric([kind], throttle.waited)
    yield from (limits, moved, waited)


def _rpc_metrics(stats: CallStats) -> Iterator[Metric]:
    latency = HistogramMetricFamily(
        "chordshare_rpc_seconds", "Answered calls to peers, by method", labels=["method"]
    )
    for method, seen in sorted(stats.latency.items()):
        latency.add_metric([method], seen.cumulative(), seen.total)
    yield latency
    failed = CounterMetricFamily(
        "chordshare_rpc_failures", "Calls to peers that failed, by method", labels=["method"]
    )
    for method, count in sorted(stats.failures.items()):
        failed.add_metric([method], count)
    yield failed


class CacheCollector(Collector):
    """What the node's download cache counts (`sharing.download_cache`)."""

    def __init__(self, cache: DownloadCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "chordshare_api_cache_files",
            "Whole files in the download cache, each served to other getters too",
            value=self.cache.files,
        )
        yield CounterMetricFamily(
            "chordshare_api_cache_served_bytes",
            "Chunk bytes this node served to other getters from its download cache",
            value=self.cache.served_bytes,
        )
        yield GaugeMetricFamily(
            "chordshare_api_cache_bytes",
            "Bytes of whole files in the API's download cache",
            value=self.cache.used_bytes,
        )
        yield GaugeMetricFamily(
            "chordshare_api_cache_limit_bytes",
            "The most bytes the API's download cache keeps (--api-cache)",
            value=self.cache.limit,
        )
        yield CounterMetricFamily(
            "chordshare_api_cache_evictions",
            "Files evicted from the API's download cache to make room, least recently used first",
            value=self.cache.evictions,
        )


def registry_for(peer: SharingPeer) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PeerCollector(peer))
    registry.register(CacheCollector(peer.cache))
    return registry
