"""The image, built from the repository's Dockerfile and run: three containers on a podman
network of their own form a ring as compose.yaml's nodes do, a file put through one node
comes back through another with the same bytes, the image's HEALTHCHECK reports healthy, and
SIGTERM makes a node leave the ring.

The base image is made from Debian's packages and given to the Dockerfile as
--build-arg BASE, and the wheels come from the host (image_build.py says why); podman runs
everything (podman_runner.py). Every container with its volume, the network and the image
are removed at the end, also when a test fails; only the base image is kept, for the next
run.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from image_build import build_context, ensure_base_image, python_minor
from podman_runner import Podman
from required import unavailable

T = TypeVar("T")

pytestmark = [pytest.mark.system, pytest.mark.timeout(1800)]

APT = "apt-get install -y podman runc mmdebstrap netavark aardvark-dns iptables"
TOOLS = ("podman", "runc", "mmdebstrap")
PORT = 7000
ROLES = ("node1", "node2", "node3")
BUILD_DEADLINE = 900.0
HEALTHY_DEADLINE = 60.0
RING_DEADLINE = 90.0
STOP_GRACE = 30  # seconds podman stop waits after SIGTERM before it kills
PAYLOAD_SIZE = 3 * 1024 * 1024 + 12345  # several chunks, the last one short


def eventually(check: Callable[[], T], deadline: float, what: str, interval: float = 0.5) -> T:
    """Call check until it returns without an AssertionError; past the deadline, fail with
    the last one."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            return check()
        except AssertionError as err:
            if time.monotonic() > give_up:
                raise AssertionError(f"{what}: not so after {deadline:.0f} s: {err}") from err
        time.sleep(interval)


def ring_id(address: str) -> int:
    """A node's id on the ring: the SHA-1 of the address it advertises."""
    return int.from_bytes(hashlib.sha1(address.encode()).digest(), "big")


@dataclass(frozen=True)
class Ring:
    podman: Podman
    names: dict[str, str]  # role -> container name, which is also its name on the network

    def address(self, role: str) -> str:
        return f"{self.names[role]}:{PORT}"

    def chordshare(self, role: str, *argv: str) -> str:
        """Run the image's CLI in that role's container, as the image's user."""
        return self.podman.exec(self.names[role], "chordshare", *argv)

    def walk(self, role: str) -> list[tuple[int, str]]:
        """The ring as `chordshare ring` walks it from that node: (id, address) pairs."""
        out = self.chordshare(role, "ring", "--node", self.address(role), "--json")
        return [(node["id"], node["address"]) for node in json.loads(out)["nodes"]]

    def healthy(self, role: str) -> None:
        """The image's HEALTHCHECK, run by podman as its timer would (AssertionError if not
        healthy)."""
        self.podman.run("healthcheck", "run", self.names[role])


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed ({APT})")
    runner = Podman(str(shutil.which("podman")), prefix=f"chordshare-test-{secrets.token_hex(3)}")
    try:
        yield runner
    finally:
        try:
            show_containers(runner)
        finally:
            runner.cleanup()


def show_containers(podman: Podman) -> None:
    """Print what each container said and how it ended: pytest shows it for a failed test."""
    for name in podman.containers:
        if podman.run("container", "exists", name, check=False).returncode == 0:
            state = podman.inspect(name)["State"]
            print(f"--- {name}: {state['Status']}, exit code {state['ExitCode']}")
            print(podman.logs(name))


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The image built from the repository's Dockerfile on the Debian-made base."""
    workdir = Path(tempfile.mkdtemp(prefix="chordshare-image-"))
    try:
        base = ensure_base_image(podman, str(shutil.which("mmdebstrap")), workdir)
        # The wheels are made by this Python: they install only on the same minor version.
        assert python_minor(podman, base) == sys.version_info[:2], (
            f"{base} has another Python than {sys.executable}: its wheels would not install"
        )
        context = build_context(workdir / "context")
        tag = f"localhost/{podman.prefix}:latest"
        podman.build(tag, context, {"BASE": base}, BUILD_DEADLINE)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return tag


@pytest.fixture(scope="module")
def ring(podman: Podman, image: str) -> Ring:
    """node1 creates the ring, node2 and node3 join through node1, each advertising its
    container name; returned once every node walks the same ring of three."""
    ring = Ring(podman, {role: f"{podman.prefix}-{role}" for role in ROLES})
    network = f"{podman.prefix}-net"
    podman.create_network(network)
    first, *others = ROLES
    podman.start(ring.names[first], image, network, {"CHORDSHARE_ADVERTISE": ring.address(first)})
    # As compose.yaml's depends_on: the others start once the first one is healthy.
    eventually(lambda: ring.healthy(first), HEALTHY_DEADLINE, f"{first} healthy")
    for role in others:
        env = {"CHORDSHARE_ADVERTISE": ring.address(role), "CHORDSHARE_JOIN": ring.address(first)}
        podman.start(ring.names[role], image, network, env)
    expected = {ring.address(role) for role in ROLES}

    def every_node_walks_the_three() -> None:
        for role in ROLES:
            walked = [address for _, address in ring.walk(role)]
            assert sorted(walked) == sorted(expected), f"from {role}: {walked}"

    eventually(every_node_walks_the_three, RING_DEADLINE, "one ring of three nodes")
    return ring


def test_three_containers_form_one_ring_at_their_names(ring: Ring) -> None:
    walks = {role: ring.walk(role) for role in ROLES}
    for role, walk in walks.items():
        assert walk[0][1] == ring.address(role), "a walk starts at the node asked"
        # Each id is the SHA-1 of the name the node advertises: no node took another name.
        assert all(ident == ring_id(address) for ident, address in walk), walk
    # One ring: every walk is the same cycle, in id order, entered at a different node.
    cycle = sorted(walks[ROLES[0]])
    for walk in walks.values():
        start = cycle.index(walk[0])
        assert walk == cycle[start:] + cycle[:start], (walk, cycle)


def test_a_file_put_through_one_node_comes_back_through_another(ring: Ring, tmp_path: Path) -> None:
    payload = random.Random(7000).randbytes(PAYLOAD_SIZE)
    sent = tmp_path / "payload.bin"
    sent.write_bytes(payload)
    sent.chmod(0o644)  # readable by the image's user, whoever podman cp makes its owner
    putter, getter = ring.names["node2"], ring.names["node3"]
    ring.podman.copy(str(sent), f"{putter}:/tmp/payload.bin")

    put_argv = ("put", "--node", ring.address("node2"), "--json", "/tmp/payload.bin")
    put = json.loads(ring.chordshare("node2", *put_argv))
    assert put["name"] == "payload.bin"
    assert put["size"] == len(payload)
    assert put["sha256"] == hashlib.sha256(payload).hexdigest()
    assert put["chunks"] > 1

    ring.chordshare(
        "node3", "get", "--node", ring.address("node3"), "--output", "/tmp/back.bin", "payload.bin"
    )
    received = tmp_path / "back.bin"
    ring.podman.copy(f"{getter}:/tmp/back.bin", str(received))
    assert received.read_bytes() == payload


def test_the_healthcheck_reports_every_node_healthy(ring: Ring) -> None:
    for role in ROLES:
        ring.healthy(role)
        assert ring.podman.inspect(ring.names[role])["State"]["Health"]["Status"] == "healthy"


def test_sigterm_makes_a_node_leave_the_ring(ring: Ring) -> None:
    leaver = "node3"
    name = ring.names[leaver]
    ring.podman.run("stop", f"--time={STOP_GRACE}", name, timeout=STOP_GRACE + 30)
    code = ring.podman.inspect(name)["State"]["ExitCode"]
    # 0: the node caught SIGTERM and finished leaving; SIGKILL after the grace period is 137.
    assert code == 0, f"{leaver} exited {code} on podman stop, not 0 (it never left the ring)"
    assert "left the ring" in ring.podman.logs(name)
    rest = sorted(ring.address(role) for role in ROLES if role != leaver)

    def the_others_close_the_ring() -> None:
        for role in ROLES:
            if role != leaver:
                assert sorted(address for _, address in ring.walk(role)) == rest

    eventually(the_others_close_the_ring, RING_DEADLINE, f"a ring without {leaver}")
