"""Re-serving: a file a node fetched for a download through its REST API stays in its
download cache, and the node serves it to the next getter as one more source, announced as
a locator marked `cached` to the holders of the name's key. An evicted file's locator is
withdrawn at once; a removed file is not brought back by a cache that still keeps it.
Real peers on loopback gRPC."""

from __future__ import annotations

import hashlib
from pathlib import Path

from apinet import ApiNetwork as Network
from waiting import wait_for_answer, wait_until

from chordshare.files.messages import FileError, Refusal
from chordshare.files.placement import file_key
from chordshare.sharing.peer import SharingPeer

KIB = 1024
MIB = 1024 * KIB


def address(peer: SharingPeer) -> str:
    return peer.server.node.me.address


def stores(peer: SharingPeer, name: str) -> bool:
    return peer.store.manifest(name) is not None


def key_holders(net: Network, name: str, k: int) -> list[SharingPeer]:
    """The live peers that hold name's key: its owner and the owner's k-1 successors."""
    live = net.live()
    key = file_key(live[0].server.node.space, name)
    owner = next(p for p in live if p.server.node.state.owns(key))
    named = [address(owner), *(s.address for s in owner.server.node.state.successors)]
    return [p for a in named[:k] for p in live if address(p) == a]


async def named_by(holder: SharingPeer, name: str) -> list[str]:
    """Whom a holder of name's key names as its sources (FindFile)."""
    assert holder.service is not None
    found = await holder.service.find_file(name)
    return [] if found is None else list(found.holders)


async def start(net: Network, count: int, **sharing: object) -> list[SharingPeer]:
    first = await net.start(**sharing)
    peers = [first]
    for _ in range(count - 1):
        peers.append(await net.start(join=address(first), **sharing))
    await wait_until(net.converged, 20, f"{count} peers to converge")
    return peers


async def test_a_file_fetched_through_a_node_is_served_by_it_once_its_holder_is_gone(
    net: Network, tmp_path: Path
) -> None:
    # One copy of each file: once its holder is gone, only the cache can serve it.
    peers = await start(net, 4, replicas=1)
    data = hashlib.shake_256(b"re-served").digest(2 * MIB + 7)
    (tmp_path / "film.mkv").write_bytes(data)
    await peers[0].files(peers[0].server.node).put(tmp_path / "film.mkv")
    [holder] = [p for p in peers if stores(p, "film.mkv")]
    cacher, getter = [p for p in peers if p is not holder][:2]
    async with await net.api(cacher) as http:
        got = await http.get("/api/v1/files/film.mkv")
        assert got.status_code == 200 and got.content == data
        assert got.headers["x-chordshare-sources"] == f"{address(holder)}={len(data)}"

        async def announced() -> bool:
            return address(cacher) in await named_by(holder, "film.mkv")

        await wait_for_answer(announced, 5, "the cacher to be named as a source")
        await holder.stop(graceful=False)
        await wait_until(net.converged, 20, "the ring to heal")
        report = None

        async def fetched() -> bool:
            nonlocal report
            try:
                report = await getter.files(getter.server.node).get(
                    "film.mkv", tmp_path / "again.mkv"
                )
            except FileError:
                return False  # the new owner of the key has not heard of the cache yet
            return True

        await wait_for_answer(fetched, 10, "a get served by the cache")
        assert report is not None and report.sources == {address(cacher): len(data)}
        assert (tmp_path / "again.mkv").read_bytes() == data
        assert cacher.cache.served_bytes == len(data)
        info = (await http.get("/api/v1/node")).json()["cache"]
        assert info["files"] == 1 and info["served_bytes"] == len(data)
        assert info["used_bytes"] == len(data) and info["max_bytes"] == cacher.cache.limit
        metrics = (await http.get("/metrics")).text
        [served] = [
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("chordshare_api_cache_served_bytes_total ")
        ]
        assert served == len(data)


async def test_an_evicted_file_is_withdrawn_and_a_removed_one_stays_removed(
    net: Network, tmp_path: Path
) -> None:
    # Locators live three republish periods (90 s): only a withdrawal makes one go sooner.
    peers = await start(net, 4, cache_bytes=MIB + MIB // 2, republish=30.0)
    files = {name: hashlib.shake_256(name.encode()).digest(MIB) for name in ("a.bin", "b.bin")}
    client = peers[0].files(peers[0].server.node)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        await client.put(tmp_path / name)
    await wait_until(
        lambda: all(sum(stores(p, n) for p in peers) == 3 for n in files), 10, "3 copies each"
    )
    [cacher] = [p for p in peers if not stores(p, "a.bin")]
    holders = key_holders(net, "a.bin", 3)
    assert cacher not in holders

    async def named(everywhere: bool) -> bool:
        answers = [address(cacher) in await named_by(h, "a.bin") for h in holders]
        return all(answers) if everywhere else not any(answers)

    async with await net.api(cacher) as http:
        assert (await http.get("/api/v1/files/a.bin")).content == files["a.bin"]
        await wait_for_answer(lambda: named(True), 5, "a.bin's cached locator")
        # No room for both: b.bin evicts a.bin, whose locator goes with it.
        assert (await http.get("/api/v1/files/b.bin")).content == files["b.bin"]
        assert cacher.cache.evictions == 1
        await wait_for_answer(lambda: named(False), 5, "a.bin's locator to be withdrawn")

        # Cached again, then removed: the cache still keeps it and its locator stands, but
        # the removal is newer than the version it keeps.
        assert (await http.get("/api/v1/files/a.bin")).content == files["a.bin"]
        await wait_for_answer(lambda: named(True), 5, "a.bin's cached locator again")
        await client.remove("a.bin")
        assert any(loc.cached for h in holders for loc in h.service.soft.sharers("a.bin"))
        assert [m.name for m in cacher.cache.manifests()] == ["a.bin"]
        for asker in peers:
            try:
                await asker.files(asker.server.node).find("a.bin")
            except FileError as err:
                assert err.refusal is Refusal.NOT_FOUND
            else:
                raise AssertionError(f"{address(asker)} found the removed a.bin")
        assert (await http.get("/api/v1/files/a.bin")).status_code == 404
