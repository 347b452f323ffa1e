"""A harness for multi-host tests: Linux network namespaces on a bridge, one node in each.

Real hosts differ from processes on loopback in what a test of a deployment must see: every
node has its own address, nodes talk over a link that can be cut (packets then vanish, no
connection is refused), and a link can be capped (tc). `Network` builds that with nothing
but `ip`: a switch namespace `<prefix>-sw` holding a bridge, and one namespace per host
`<prefix>-hN` whose `eth0` is one end of a veth pair whose other end is a port of the
bridge. The veth pairs are created from inside the switch namespace straight into the host
namespaces, so the root namespace (the machine's own network) is never touched: no
interface, address or route is added to it. Names carry a random prefix (`cs` + 4 hex
digits) and the subnet is a 10.231.X.0/24 that no route of the machine uses, so two runs
side by side, or a run next to real networks, do not collide.

Each host runs `chordshare node` the way the container does: one YAML file in the layout of
/etc/chordshare/node.yaml (bind, advertise, join, data_dir, api, replicas, ...) and
`chordshare node --config FILE`. Where this chordshare has no `--config` yet (checked once,
from `chordshare node --help`), the same values are passed as flags instead; the config
file is written either way, so the layout is exercised as soon as the option exists.

`Network.destroy` kills every process started here and deletes the namespaces (deleting a
namespace deletes the veth ends in it, and with the switch namespace the bridge), then
checks that nothing with the prefix is left. Nodes also die with the thread that started
them (PR_SET_PDEATHSIG, survives the exec of `ip netns exec`, which does not fork).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from helpers import NodeProcess, _die_with_parent

PYTHON = sys.executable
CLI_MODULE = ("-m", "chordshare.faces.cli")
NODE_PORT = 7000
API_PORT = 8000
CLI_DEADLINE = 30.0


# A userspace netem for one link: frames from the host's port (argv[1]) go to the bridge
# side (argv[2]) after argv[3] seconds, or are dropped with probability argv[4]; frames the
# other way pass at once. Raw packet sockets with virtio-net headers, so checksum and
# segmentation offloads pass through untouched (frames may exceed the MTU).
RELAY_CODE = """
import collections, random, select, socket, sys, time
PACKET_VNET_HDR, SOL_PACKET = 15, 263
def open_link(name):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.bind((name, 0))
    sock.setblocking(False)
    return sock
host, bridge = open_link(sys.argv[1]), open_link(sys.argv[2])
delay, loss = float(sys.argv[3]), float(sys.argv[4])
held = collections.deque()
print("relaying", flush=True)
while True:
    wait = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable, _, _ = select.select([host, bridge], [], [], wait)
    for sock in readable:
        while True:
            try:
                frame, addr = sock.recvfrom(262144)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if sock is bridge:
                try:
                    host.send(frame)
                except OSError:
                    pass
            elif random.random() >= loss:
                held.append((time.monotonic() + delay, frame))
    now = time.monotonic()
    while held and held[0][0] <= now:
        try:
            bridge.send(held.popleft()[1])
        except OSError:
            pass
"""


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no `ip`, no netns support); the
    message says why, for a skip reason."""


def _run(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can (a throwaway namespace is
    created and deleted to find out)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the multi-host tests as root)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"csprobe-{secrets.token_hex(2)}"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails: {made.stderr.strip()}"
    finally:
        _run("ip", "netns", "delete", probe, check=False)
    return None


def used_subnets() -> set[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace routes or has an address in."""
    found: set[ipaddress.IPv4Network] = set()
    for args in (("ip", "-4", "-j", "route", "show", "table", "all"), ("ip", "-4", "-j", "addr")):
        try:
            data = json.loads(_run(*args).stdout or "[]")
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue
        for entry in data:
            dst = entry.get("dst")
            if dst and dst != "default":
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.ip_network(dst, strict=False))  # type: ignore[arg-type]
            for info in entry.get("addr_info", []):
                with contextlib.suppress(ValueError, KeyError):
                    found.add(
                        ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                    )  # type: ignore[arg-type]
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.231.X.0/24 that overlaps nothing the machine routes (X random, so parallel runs
    rarely even try the same one)."""
    used = used_subnets()
    start = secrets.randbelow(256)
    for step in range(256):
        net = ipaddress.IPv4Network(f"10.231.{(start + step) % 256}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsUnavailable("no free 10.231.X.0/24 subnet")


def node_help() -> str:
    done = subprocess.run(
        [PYTHON, *CLI_MODULE, "node", "--help"],
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        check=False,
    )
    return done.stdout + done.stderr


def yaml_text(values: dict[str, Any]) -> str:
    """A flat YAML mapping (JSON scalars are valid YAML, so strings are quoted safely)."""
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items())


@dataclass
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str


class CliFailed(AssertionError):
    """A CLI call in a namespace failed (an AssertionError, so `eventually` retries it)."""


@dataclass
class Host:
    """One namespace with one node: its address, its config file and data directory."""

    index: int  # 1-based, as in "host 3"
    ns: str
    port: str  # the bridge port (veth end in the switch namespace) of this host's link
    ip: str
    data_dir: Path
    config_path: Path
    log_path: Path
    config: dict[str, Any] = field(default_factory=dict)
    process: NodeProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{NODE_PORT}"

    @property
    def api(self) -> str:
        return f"{self.ip}:{API_PORT}"


@dataclass
class Network:
    """The namespaces, bridge and node processes of one run (see the module docstring)."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"cs{secrets.token_hex(2)}")
    hosts: list[Host] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None
    use_config: bool = False
    _logs: list[IO[bytes]] = field(default_factory=list)
    _made: list[str] = field(default_factory=list)  # namespaces created, for destroy
    _bridges: list[str] = field(default_factory=list)  # extra bridges of `partition`
    _relays: dict[int, subprocess.Popen[str]] = field(default_factory=dict)  # by host index

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    # --- building and tearing down -----------------------------------------------------

    def create(self, count: int = 4) -> Network:
        """Make the switch namespace with its bridge and `count` host namespaces linked to
        it, each with `lo` up and eth0 at .N of the subnet."""
        self.subnet = free_subnet()
        self.use_config = "--config" in node_help()
        sw = self.switch
        _run("ip", "netns", "add", sw)
        self._made.append(sw)
        _run("ip", "-n", sw, "link", "set", "lo", "up")
        _run("ip", "-n", sw, "link", "add", self.bridge, "type", "bridge")
        _run("ip", "-n", sw, "link", "set", self.bridge, "up")
        for index in range(1, count + 1):
            ns = f"{self.prefix}-h{index}"
            port = f"{self.prefix}-p{index}"
            ip = str(self.subnet.network_address + index)
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", ns)  # fmt: skip
            _run("ip", "-n", sw, "link", "set", port, "master", self.bridge)
            _run("ip", "-n", sw, "link", "set", port, "up")
            _run("ip", "-n", ns, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            home = self.workdir / f"h{index}"
            home.mkdir(parents=True, exist_ok=True)
            self.hosts.append(
                Host(
                    index=index,
                    ns=ns,
                    port=port,
                    ip=ip,
                    data_dir=home / "data",
                    config_path=home / "node.yaml",
                    log_path=home / "node.log",
                )
            )
        return self

    def destroy(self) -> list[str]:
        """Kill every node, delete every namespace made here; returns what is still left
        (namespaces or processes; empty when the cleanup is complete)."""
        for host in self.hosts:
            node = host.process
            if node is not None and node.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGCONT)
                    os.kill(node.pid, signal.SIGKILL)
        for host in self.hosts:
            if host.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.process.popen.wait(10)
        for relay in self._relays.values():
            relay.kill()
            relay.wait(10)
        for log in self._logs:
            log.close()
        # Anything else still running in a namespace (a CLI call cut short) goes too.
        for ns in self._made:
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in reversed(self._made):
            _run("ip", "netns", "delete", ns, check=False)
        return self.leftovers()

    def leftovers(self) -> list[str]:
        left = [
            f"namespace {name}"
            for name in _run("ip", "netns", "list", check=False).stdout.split()
            if name.startswith(f"{self.prefix}-")
        ]
        links = _run("ip", "-o", "link", check=False).stdout
        left += [f"root-namespace link {self.prefix}" for _ in range(links.count(self.prefix))]
        left += [
            f"process {h.process.pid} of {h.ns}"
            for h in self.hosts
            if h.process is not None and h.process.running()
        ]
        return left

    # --- links -------------------------------------------------------------------------

    def link(self, host: Host, up: bool) -> None:
        """Plug or unplug the host's cable (its bridge port; the host sees carrier loss)."""
        _run("ip", "-n", self.switch, "link", "set", host.port, "up" if up else "down")

    def shape(self, host: Host, delay_ms: int = 0, loss_pct: float = 0.0) -> None:
        """Impair what the host sends: every frame is delayed by `delay_ms` (so each round
        trip with the host takes that much longer) and/or dropped with probability
        `loss_pct` %, as `tc qdisc ... netem` on its eth0 would. netem is not in every
        kernel, so this is done in the switch instead: the host's port leaves the bridge
        and a relay (RELAY_CODE, raw packet sockets) carries frames between the port and a
        new link to the bridge, holding back or dropping what the host sent."""
        self.unshape(host)
        into, out = f"{self.prefix}-d{host.index}", f"{self.prefix}-e{host.index}"
        sw = self.switch
        _run("ip", "-n", sw, "link", "add", into, "type", "veth", "peer", "name", out)
        _run("ip", "-n", sw, "link", "set", out, "master", self.bridge)
        for name in (into, out):
            _run("ip", "-n", sw, "link", "set", name, "up")
        _run("ip", "-n", sw, "link", "set", host.port, "nomaster")
        argv = ("ip", "netns", "exec", sw, PYTHON, "-c", RELAY_CODE, host.port, into,
                str(delay_ms / 1000), str(loss_pct / 100))  # fmt: skip
        relay = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        assert relay.stdout is not None
        ready = relay.stdout.readline()
        if ready.strip() != "relaying":
            relay.kill()
            raise RuntimeError(f"the link relay did not start: {ready} {relay.stderr.read()}")
        self._relays[host.index] = relay

    def unshape(self, host: Host) -> None:
        """Take the host's impairment off again: its port back on the bridge."""
        relay = self._relays.pop(host.index, None)
        if relay is None:
            return
        relay.kill()
        relay.wait(10)
        _run("ip", "-n", self.switch, "link", "set", host.port, "master", self.bridge)
        _run("ip", "-n", self.switch, "link", "delete", f"{self.prefix}-d{host.index}",
             check=False)  # fmt: skip

    def partition(self, *sides: Sequence[Host]) -> None:
        """Split the switch: each side's ports move to a bridge of their own, so hosts on
        different sides cannot reach each other (ARP goes unanswered, packets on open
        connections vanish) while each side still works. Hosts in no side stay on the
        main bridge, cut off from every side. `heal` joins them again."""
        for i, side in enumerate(sides, 1):
            bridge = f"{self.prefix}-b{i}"
            if bridge not in self._bridges:
                _run("ip", "-n", self.switch, "link", "add", bridge, "type", "bridge")
                _run("ip", "-n", self.switch, "link", "set", bridge, "up")
                self._bridges.append(bridge)
            for host in side:
                _run("ip", "-n", self.switch, "link", "set", host.port, "master", bridge)

    def heal(self) -> None:
        """Every port back on the main bridge."""
        for host in self.hosts:
            _run("ip", "-n", self.switch, "link", "set", host.port, "master", self.bridge)

    def cap_egress(self, host: Host, rate: str = "100mbit") -> None:
        """Cap what the host sends (its eth0) with a token bucket."""
        _run("ip", "netns", "exec", host.ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
             "tbf", "rate", rate, "burst", "32kbit", "latency", "50ms")  # fmt: skip

    # --- nodes -------------------------------------------------------------------------

    def configure(self, host: Host, join: Host | None, **extra: Any) -> dict[str, Any]:
        """Write the host's node.yaml (the container's layout) and return its values."""
        values: dict[str, Any] = {
            "bind": host.address,
            "advertise": host.address,
            "data_dir": str(host.data_dir),
            "api": host.api,
            "replicas": 3,
        }
        if join is not None:
            values["join"] = join.address
        values.update(extra)
        host.config = values
        host.config_path.write_text(yaml_text(values))
        return values

    def node_args(self, host: Host) -> list[str]:
        """`node --config FILE` where chordshare has it, else the same values as flags."""
        if self.use_config:
            return ["node", "--config", str(host.config_path)]
        args = ["node"]
        for key, value in host.config.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        return args

    def start(self, host: Host, wait: bool = True) -> NodeProcess:
        """Start the host's node from its config (call `configure` first) in its namespace."""
        args = self.node_args(host)
        log = host.log_path.open("ab")
        self._logs.append(log)
        argv = ("ip", "netns", "exec", host.ns, PYTHON, *CLI_MODULE, *args)
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # only a prctl: safe between fork and exec
        )
        node = _LogTail(popen, host.log_path, tuple(argv), skip=host.log_path.stat().st_size)
        host.process = node
        return node.wait_ready(40.0) if wait else node

    def start_all(
        self, hosts: Sequence[Host] | None = None, ready: float = 40.0, **extra: Any
    ) -> None:
        """Configure every host (or those given; the first creates the ring, the others
        join through it) and start the first, then the rest at once."""
        hosts = list(self.hosts if hosts is None else hosts)
        first = hosts[0]
        for host in hosts:
            self.configure(host, None if host is first else first, **extra)
        self.start(first, wait=False).wait_ready(ready)
        started = [self.start(h, wait=False) for h in hosts[1:]]
        for node in started:
            node.wait_ready(ready)

    # --- client commands ---------------------------------------------------------------

    def cli(self, host: Host, *args: str, timeout: float = CLI_DEADLINE) -> CliResult:
        """Run one `chordshare` command inside the host's namespace."""
        argv = ("ip", "netns", "exec", host.ns, PYTHON, *CLI_MODULE, *args)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise CliFailed(f"{' '.join(args)} in {host.ns}: no answer in {timeout} s") from err
        return CliResult(tuple(args), done.returncode, done.stdout, done.stderr)

    def python(self, host: Host, code: str, *args: str, timeout: float = CLI_DEADLINE) -> Any:
        """Run a Python snippet inside the host's namespace and decode the JSON it prints
        last (for clients that must make many calls: one process, not one per call)."""
        argv = ("ip", "netns", "exec", host.ns, PYTHON, "-c", code, *args)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise CliFailed(f"python in {host.ns}: no answer in {timeout} s") from err
        if done.returncode != 0:
            raise CliFailed(f"python in {host.ns} exited {done.returncode}: {done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def cli_json(self, host: Host, *args: str, timeout: float = CLI_DEADLINE) -> Any:
        result = self.cli(host, *args, "--json", timeout=timeout)
        if result.code != 0:
            raise CliFailed(
                f"chordshare {' '.join(args)} in {host.ns} exited {result.code}: {result.stderr}"
            )
        return json.loads(result.stdout)

    def ring(self, host: Host, via: Host | None = None) -> list[str]:
        """Addresses along the ring walked from `host`'s node (asked from `via`'s
        namespace, by default the host's own)."""
        answer = self.cli_json(via or host, "ring", "--node", host.address, timeout=15.0)
        return [n["address"] for n in answer["nodes"]]

    def logs(self) -> str:
        """Every node's warnings and the end of its log, for a failure report (a ring's
        decisions worth knowing after a failure are logged as warnings and above)."""
        parts = []
        for host in self.hosts:
            text = host.log_path.read_text(errors="replace") if host.log_path.exists() else ""
            lines = text.splitlines()
            earlier = [line for line in lines[:-15] if " WARNING " in line or " ERROR " in line]
            tail = "\n".join([*earlier[-40:], *lines[-15:]])
            parts.append(f"--- {host.ns} {host.address}\n{tail}")
        return "\n".join(parts)


class _LogTail(NodeProcess):
    """A NodeProcess whose readiness line is looked for only after `skip` bytes of its log
    (a restarted node appends to the log of its earlier run)."""

    def __init__(
        self, popen: subprocess.Popen[bytes], log_path: Path, args: Sequence[str], skip: int
    ) -> None:
        super().__init__(popen, log_path, tuple(args))
        self.skip = skip

    def log(self) -> str:
        with self.log_path.open("rb") as f:
            f.seek(self.skip)
            return f.read().decode(errors="replace")


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Poll `check` until it returns without AssertionError; raise naming `what` and the
    last failure at the deadline (bounded polling, never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout} s: {err}") from err
        time.sleep(interval)
