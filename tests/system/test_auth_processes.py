"""System tests: a private network of node processes, as an operator sets one up.

The nodes get the cluster token from a file (`--cluster-token-file`), certificates made by
`chordshare certs`, and an API token; the CLI gets the same secrets from the CHORDSHARE_*
variables or the options before the command. Without them every command is refused with
one line that says what is missing, and a probe of grpc.health.v1 still answers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CLI, CliResult, Processes, api_url, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]


def chordshare(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> CliResult:
    """Run the CLI with exactly these CHORDSHARE_* variables (none inherited)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHORDSHARE_")}
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**clean, **(env or {})},
    )
    return CliResult(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def one_error_line(result: CliResult, *words: str) -> None:
    assert result.code == 2, result
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert line.startswith("error:"), line
    for word in words:
        assert word in line, line


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.cleanup()


def test_a_private_network_with_a_cluster_token_and_an_api_token(
    procs: Processes, tmp_path: Path
) -> None:
    token_file, api_token_file = tmp_path / "cluster.token", tmp_path / "api.token"
    token_file.write_text(secrets.token_urlsafe(32) + "\n")
    api_token = secrets.token_urlsafe(32)
    api_token_file.write_text(api_token)
    secret = ["--cluster-token-file", str(token_file)]
    first = procs.start(
        extra=[*secret, "--api", "127.0.0.1:0", "--api-token-file", str(api_token_file)]
    )
    second = procs.start(join=first.address, extra=secret)

    # A node without the token cannot join, and says why.
    stranger = procs.start(join=first.address, wait=False)
    assert stranger.popen.wait(timeout=30) != 0
    wait_until(lambda: "cluster token" in stranger.log(), 10, "the refused join's message")

    # The CLI without the token: one line; health probes still answer.
    one_error_line(chordshare("ring", "-n", first.address), "cluster token")
    health = chordshare("health", "-n", first.address)
    assert health.code == 0 and "serving" in health.stdout

    # With the token, from the option or from the variable the nodes read too.
    def ring_size() -> int:
        result = chordshare(*secret, "ring", "-n", second.address, "--json")
        return len(result.stdout and json.loads(result.stdout)["nodes"])

    wait_until(lambda: ring_size() == 2, 30, "a ring of the two nodes with the token")
    env = {"CHORDSHARE_CLUSTER_TOKEN_FILE": str(token_file)}
    source = tmp_path / "notes.txt"
    source.write_bytes(secrets.token_bytes(5000))
    assert chordshare("put", str(source), "-n", first.address, env=env).code == 0
    back = tmp_path / "back.txt"
    got = chordshare("get", "notes.txt", "-o", str(back), "-n", second.address, env=env)
    assert got.code == 0, got.stderr
    assert back.read_bytes() == source.read_bytes()

    # The REST API asks writers for its own token; reading stays open by default.
    url = api_url(first.log())
    with httpx.Client(base_url=url, timeout=10) as api:
        assert api.get("/api/v1/files", params={"scope": "network"}).status_code == 200
        refused = api.delete("/api/v1/files/notes.txt")
        assert refused.status_code == 401
        assert api.get("/api/v1/files/notes.txt").content == source.read_bytes()
        assert api.post("/shutdown").status_code == 401
        assert api.get("/shutdown").status_code == 405
        bearer = {"Authorization": f"Bearer {api_token}"}
        # Put with the user's key: the API, which signs with the node's, may not remove it.
        denied = api.delete("/api/v1/files/notes.txt", headers=bearer)
        assert denied.status_code == 403 and "belongs to key" in denied.text
        put = api.put("/api/v1/files/memo.txt", content=b"through the api", headers=bearer)
        assert put.status_code == 201, put.text
        assert api.delete("/api/v1/files/memo.txt", headers=bearer).status_code == 204
    assert chordshare("rm", "notes.txt", "-n", first.address, env=env).code == 0
    assert first.running()

    # `leave` is a peer call too: refused without the token, even from this host.
    one_error_line(chordshare("leave", "-n", second.address), "cluster token")
    assert second.running()
    assert chordshare("leave", "-n", second.address, env=env).code == 0
    assert second.popen.wait(20) == 0


def test_settings_a_node_cannot_use_are_one_line_errors(procs: Processes, tmp_path: Path) -> None:
    cases = [
        (["--cluster-token", "short"], "at least 16"),
        (["--cluster-token-file", str(tmp_path / "absent")], "cluster token file"),
        (["--tls-cert", str(tmp_path / "c.pem")], "missing --tls-key"),
        (["--api-open", "--api-protect-reads"], "not both"),
    ]
    for flags, words in cases:
        result = chordshare("node", "--bind", "127.0.0.1:0", "--api", "off", *flags)
        one_error_line(result, words)


def test_mutual_tls_between_node_processes(procs: Processes, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    made = chordshare("certs", str(pki), "n1", "n2", "operator")
    assert made.code == 0, made.stderr
    assert "--tls-cert" in made.stdout

    def tls(name: str) -> list[str]:
        return [
            "--tls-cert",
            str(pki / f"{name}.pem"),
            "--tls-key",
            str(pki / f"{name}-key.pem"),
            "--tls-ca",
            str(pki / "ca.pem"),
        ]

    first = procs.start(extra=tls("n1"))
    second = procs.start(join=first.address, extra=tls("n2"))
    env = {
        "CHORDSHARE_TLS_CERT": str(pki / "operator.pem"),
        "CHORDSHARE_TLS_KEY": str(pki / "operator-key.pem"),
        "CHORDSHARE_TLS_CA": str(pki / "ca.pem"),
    }

    def ring_size() -> int:
        result = chordshare("ring", "-n", second.address, "--json", env=env)
        return len(json.loads(result.stdout)["nodes"]) if result.code == 0 else 0

    wait_until(lambda: ring_size() == 2, 30, "a TLS ring of two nodes")
    one_error_line(chordshare("ring", "-n", first.address), "mutual TLS")
    assert chordshare("health", "-n", first.address, env=env).code == 0
