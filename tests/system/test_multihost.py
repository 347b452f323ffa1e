"""Multi-host test: 4 network namespaces on a bridge, each with its own address, each running
`chordshare node` from a node.yaml as the container does (see netns.py).

One test walks through a deployment's life, because building the network and starting the
nodes is most of the cost: (1) the 4 hosts form one ring, seen the same from every host,
and a file put on host 1 is got on host 4; (2) host 3's cable is pulled: the other three
heal into a ring of 3 and still serve every file; plugged back, host 3 rejoins and every
host sees 4 nodes again; (3) host 2 is killed (-9) and restarted on its data directory: it
rejoins and still lists its files. Step 3 runs before step 2: the cut is the harshest step
(a partition, not a crash), so a failure there does not hide whether a restart works.
Skipped, with the reason, where namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import parallel
from netns import Host, Network, unavailable_reason, wait_for
from required import unavailable

# Hosts in network namespaces: make test-system runs them.
pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(180)]

FILES = 6  # each file is on 3 of the 4 hosts, so host 2 surely holds some of them
FILE_SIZE = 300 * 1024  # more than one chunk, small enough to be quick


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    reason = unavailable_reason()
    if reason is not None:
        unavailable(reason)
    network = Network(tmp_path)
    try:
        network.create(4)
        yield network
    finally:
        left = network.destroy()
        print(network.logs())
        assert not left, f"left behind: {left}"


def make_file(path: Path, seed: int) -> str:
    data = hashlib.shake_256(f"multihost-{seed}".encode()).digest(FILE_SIZE)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def rings_from(net: Network, hosts: list[Host]) -> list[list[str]]:
    return parallel(net.ring, hosts)


def assert_one_ring(net: Network, hosts: list[Host]) -> None:
    """Every host's walk finds exactly these hosts, in the same cyclic order."""
    want = {h.address for h in hosts}
    walks = rings_from(net, hosts)
    for host, walk in zip(hosts, walks, strict=True):
        assert set(walk) == want and len(walk) == len(want), f"from {host.ns}: {walk}"
        assert walk[0] == host.address, f"a walk from {host.ns} starts at {walk[0]}"
    cycles = {tuple(sorted(walk[i:] + walk[:i] for i in range(len(walk)))[0]) for walk in walks}
    assert len(cycles) == 1, f"different orders: {walks}"


def get_and_check(net: Network, host: Host, name: str, sha: str, out: Path) -> dict:
    answer = net.cli_json(host, "get", name, "-o", str(out), "--node", host.address)
    assert answer["sha256"] == sha, f"{name}: wrong bytes {answer}"
    out.unlink()
    return answer


def test_four_hosts_form_heal_and_restart(net: Network, tmp_path: Path) -> None:
    h1, h2, h3, h4 = net.hosts
    print(f"network {net.prefix} on {net.subnet}; node --config: {net.use_config}")
    net.start_all(replicas=3)

    # (1) one ring of 4, the same from every host; put on host 1, get on host 4.
    wait_for("a ring of 4 from every host", lambda: assert_one_ring(net, net.hosts), 30)
    files: dict[str, str] = {}
    for seed in range(FILES):
        path = tmp_path / f"file-{seed}.bin"
        files[path.name] = make_file(path, seed)
        put = net.cli_json(h1, "put", str(path), "--node", h1.address)
        assert put["sha256"] == files[path.name]
    first = next(iter(files))
    got = get_and_check(net, h4, first, files[first], tmp_path / "got")
    assert got["sources"], got
    listing = net.cli_json(h1, "ls", "--all", "--node", h1.address)
    holders = {f["name"]: f["holders"] for f in listing["files"]}
    assert set(holders) == set(files), listing
    held_by_h2 = [name for name, where in holders.items() if h2.address in where]
    assert held_by_h2, f"host 2 holds none of the files: {holders}"

    # (3) host 2 is killed and restarted on its data directory: it rejoins with its files
    # (before step 2, see the module docstring).
    assert h2.process is not None
    h2.process.kill9()
    net.start(h2)
    wait_for("host 2 restarted: a ring of 4", lambda: assert_one_ring(net, net.hosts), 45)
    own = net.cli_json(h2, "ls", "--node", h2.address)
    names = {f["name"] for f in own["files"]}
    assert set(held_by_h2) <= names, f"host 2 lost files: had {held_by_h2}, lists {own}"
    name = held_by_h2[0]
    get_and_check(net, h2, name, files[name], tmp_path / "got-h2")

    # (2) host 3's cable is pulled: 1, 2 and 4 heal into a ring of 3 and serve every file.
    net.link(h3, up=False)
    rest = [h1, h2, h4]
    wait_for("a ring of 3 without host 3", lambda: assert_one_ring(net, rest), 45)

    def all_files_from_h4() -> None:
        for name, sha in files.items():
            get_and_check(net, h4, name, sha, tmp_path / f"got-{name}")

    wait_for("every file got on host 4 with host 3 cut off", all_files_from_h4, 30)

    # Plugged back, host 3 (which meanwhile has become a ring of its own) must rejoin.
    net.link(h3, up=True)
    wait_for(
        "host 3 back: a ring of 4 from every host", lambda: assert_one_ring(net, net.hosts), 45
    )
