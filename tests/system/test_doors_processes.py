"""A node's doors as separate processes see them: a second node on a port a node already
uses stops at once with one line and writes nothing; a node makes its API token at first
start, keeps it across restarts and prints the dashboard's URL with it; `chordshare leave`
on the same machine needs no token (the node takes it from its own host over gRPC); and a
node whose doors are open says so."""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import HOST, Processes, api_url, eventually, free_port, run_cli, walk_ring

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

DASHBOARD = re.compile(r"dashboard: (http://\S+)/#token=(\S+)")
OPEN_PEER_PORT = "without a cluster token"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def dashboard_of(log: str) -> tuple[str, str]:
    found = DASHBOARD.search(log)
    assert found, "no dashboard line yet"
    return found[1], found[2]


def test_a_second_node_on_a_taken_port_exits_with_one_line(
    procs: Processes, tmp_path: Path
) -> None:
    peer_port, api_port = free_port(), free_port()
    first = procs.start(bind=f"{HOST}:{peer_port}", extra=["--api", f"{HOST}:{api_port}"])
    taken = {
        "peer port": ["--bind", f"{HOST}:{peer_port}", "--api", "off"],
        "API port": ["--bind", f"{HOST}:{free_port()}", "--api", f"{HOST}:{api_port}"],
    }
    for what, args in taken.items():
        other = tmp_path / f"other-{what.replace(' ', '-')}"
        second = run_cli("node", *args, "--data-dir", str(other), timeout=30)
        assert second.code == 2, (what, second.stderr)
        [line] = second.stderr_lines
        taken_port = peer_port if what == "peer port" else api_port
        assert line.startswith("error:") and f"{HOST}:{taken_port}" in line, line
        assert "in use" in line, line
        assert second.seconds < 5, (what, second.seconds)
        assert not other.exists(), what
    # The first node kept its ports and its ring.
    assert first.running()
    assert [n.address for n in walk_ring(first.address)] == [first.address]
    url = eventually(lambda: api_url(first.log()), 10)
    assert httpx.get(f"{url}/api/v1/node", timeout=10).json()["address"] == first.address


def test_a_node_makes_its_token_and_a_local_leave_needs_none(
    procs: Processes, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    peer_port = free_port()
    args = ["--api", f"{HOST}:0", "--data-dir", str(data)]
    node = procs.start(bind=f"{HOST}:{peer_port}", extra=args)
    url, token = eventually(lambda: dashboard_of(node.log()), 10)
    token_file = data / "api-token"
    assert token_file.read_text().strip() == token and len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with httpx.Client(base_url=url, timeout=10) as api:
        assert api.post("/api/v1/node/leave").status_code == 401
        assert api.get("/api/v1/node").status_code == 200  # reads stay open
        bearer = {"Authorization": f"Bearer {token}"}
        upload = api.post("/api/v1/files", files={"file": ("a.txt", b"a")}, headers=bearer)
        assert upload.status_code == 201, upload.text
    assert node.running()

    left = run_cli("leave", "--node", node.address)
    assert left.code == 0, left.stderr
    assert node.popen.wait(20) == 0

    # The same data directory keeps the same token.
    again = procs.start(bind=f"{HOST}:{peer_port}", extra=args)
    assert eventually(lambda: dashboard_of(again.log()), 10)[1] == token
    assert OPEN_PEER_PORT not in again.log()
    assert run_cli("leave", "--node", again.address).code == 0
    assert again.popen.wait(20) == 0
    # Nothing runs there any more: leave says so in one line.
    gone = run_cli("leave", "--node", again.address)
    assert gone.code == 2 and len(gone.stderr_lines) == 1, gone.stderr
    assert again.address in gone.stderr and "is a node running there?" in gone.stderr


def test_an_open_api_and_an_open_peer_port_say_so(procs: Processes, tmp_path: Path) -> None:
    port = free_port()
    node = procs.start(
        bind=f"0.0.0.0:{port}",
        extra=["--advertise", f"{HOST}:{port}", "--api", f"{HOST}:0", "--api-open"],
    )
    url = eventually(lambda: api_url(node.log()), 10)
    log = node.log()
    assert f"dashboard: {url}/\n" in log  # no token to carry
    assert log.count(OPEN_PEER_PORT) == 1 and "--cluster-token-file" in log
    assert log.count("has no token (--api-open)") == 1
    assert not (tmp_path / "data-0" / "api-token").exists()
    upload = httpx.post(f"{url}/api/v1/files", files={"file": ("o.txt", b"o")}, timeout=10)
    assert upload.status_code == 201, upload.text
    # Open on purpose, and still answering only to its own names.
    foreign = httpx.get(f"{url}/api/v1/node", headers={"Host": "attacker.example"}, timeout=10)
    assert foreign.status_code == 403

    token_file = tmp_path / "cluster.token"
    token_file.write_text("a-cluster-token-long-enough\n")
    port = free_port()
    private = procs.start(
        bind=f"0.0.0.0:{port}",
        extra=["--advertise", f"{HOST}:{port}", "--cluster-token-file", str(token_file)],
    )
    assert OPEN_PEER_PORT not in private.log()


def test_a_node_that_cannot_join_leaves_no_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    nobody = f"{HOST}:{free_port()}"
    given = tmp_path / "given"
    for where in (["--data-dir", str(given)], []):  # a chosen directory, and the default
        failed = run_cli("node", "--bind", f"{HOST}:0", "--join", nobody, "--api", "off", *where)
        assert failed.code == 2 and len(failed.stderr_lines) == 1, failed.stderr
        assert "cannot reach" in failed.stderr
    assert not given.exists()
    assert not list((tmp_path / "home").rglob("*"))
    # A directory that was there before stays, with what it held.
    given.mkdir()
    (given / "notes.txt").write_text("mine")
    failed = run_cli("node", "--bind", f"{HOST}:0", "--join", nobody, "--data-dir", str(given))
    assert failed.code == 2
    assert (given / "notes.txt").read_text() == "mine"


def test_the_api_port_is_the_peer_port_plus_1000_by_default(procs: Processes) -> None:
    for _ in range(20):  # a peer port whose neighbour 1000 up is free too
        port = free_port()
        if port + 1000 <= 65535 and _free(port + 1000):
            break
    node = procs.start(bind=f"{HOST}:{port}", extra=["--api", ""])
    assert eventually(lambda: api_url(node.log()), 10) == f"http://{HOST}:{port + 1000}"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True
