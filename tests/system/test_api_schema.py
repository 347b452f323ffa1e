"""Schemathesis against a node's OpenAPI document: generated requests to every endpoint
(but leaving the ring) never get a 5xx, and every error has the documented shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from helpers import Processes, api_url, cli_json, eventually, walk_ring
from hypothesis import HealthCheck, given, settings

pytestmark = [pytest.mark.processes]


def _ring_of_two(*addresses: str) -> None:
    for address in addresses:
        assert len(walk_ring(address)) == 2, f"ring from {address} not settled"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    workdir = tmp_path_factory.mktemp("schema")
    procs = Processes(workdir)
    try:
        first = procs.start(extra=["--api", "127.0.0.1:0"])
        second = procs.start(join=first.address)
        # Generated requests are judged on a settled ring, not on one still joining.
        eventually(lambda: _ring_of_two(first.address, second.address), 15, interval=0.1)
        sample = workdir / "sample.txt"
        sample.write_text("a file for the generated requests to find\n")
        cli_json("put", str(sample), "--node", first.address)
        url = eventually(lambda: api_url(first.log()), 10, interval=0.1)
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    finally:
        procs.cleanup()


def test_generated_requests_never_get_a_server_error(api_schema: object) -> None:
    # Each operation's requests come from its own hypothesis strategy (the pytest plugin of
    # schemathesis does not run under this pytest); leaving the ring is left out.
    checked = 0
    for found in api_schema.exclude(path_regex="leave|shutdown").get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def never_a_server_error(case: schemathesis.Case) -> None:
            response = case.call(timeout=20)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"}, body
                assert {"code", "message"} <= set(body["error"]), body

        never_a_server_error()
        checked += 1
    assert checked >= 15  # every documented operation but the two that leave the ring
