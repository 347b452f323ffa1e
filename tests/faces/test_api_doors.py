"""The API's doors as plain decisions: which Host names a node answers to, and which page
origins may change it."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.faces.api_doors import Doors, split_host

LOOPBACK = Doors.for_node(["127.0.0.1"])
LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
PORTS = st.integers(min_value=1, max_value=65535)


def nothing_is_ours(ip: Any) -> bool:
    return False


def test_host_headers_are_split_into_name_and_port() -> None:
    assert split_host("LocalHost:8080") == ("localhost", 8080)
    assert split_host("localhost.") == ("localhost", None)
    assert split_host("[::1]:7000") == ("::1", 7000)
    assert split_host("[::1]") == ("::1", None)
    for bad in ("", " ", "a b", "x/y", "user@host", "[::1", "[::1]x", "h:99999", "::1", "é.fr"):
        assert split_host(bad) is None, bad


def test_a_loopback_node_answers_to_its_loopback_names_only() -> None:
    for host in ("127.0.0.1:5000", "localhost", "LOCALHOST:1", "[::1]:5000", "localhost.:80"):
        assert LOOPBACK.host_allowed(host), host
    for host in (None, "", "attacker.example", "127.0.0.2", "localhost.attacker.example"):
        assert not LOOPBACK.host_allowed(host), host


def test_bind_advertise_and_allowed_names_are_the_nodes_own() -> None:
    doors = Doors.for_node(["10.1.2.3", "[fd00::7]"], allowed_hosts=["Files.Example.org"])
    for host in ("10.1.2.3:80", "[fd00::7]:9", "files.example.org", "files.example.org:443"):
        assert doors.host_allowed(host), host
    assert not doors.host_allowed("10.1.2.4")
    with pytest.raises(ValueError, match="allowed-hosts"):
        Doors.for_node([], allowed_hosts=["not a host/"])


def test_a_wildcard_bind_answers_to_the_hosts_own_addresses_only() -> None:
    ours = {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::10")}
    doors = Doors.for_node(["0.0.0.0"])
    doors = Doors(doors.names, doors.any_interface, doors.origins, own_address=ours.__contains__)
    assert doors.any_interface
    assert doors.host_allowed("192.0.2.10:7000") and doors.host_allowed("[2001:db8::10]")
    assert not doors.host_allowed("192.0.2.11") and not doors.host_allowed("evil.test")
    # Without a wildcard, an address of the host that the node does not listen on is no name
    # of the node.
    narrow = Doors.for_node(["127.0.0.1"])
    narrow = Doors(narrow.names, narrow.any_interface, own_address=ours.__contains__)
    assert not narrow.host_allowed("192.0.2.10")


def test_the_real_interface_check_knows_loopback_and_not_a_documentation_address() -> None:
    doors = Doors.for_node(["0.0.0.0"])
    assert doors.host_allowed("127.0.0.5:1")
    assert not doors.host_allowed("192.0.2.200")


@given(LETTERS, st.one_of(st.none(), PORTS))
def test_any_other_name_is_refused(name: str, port: int | None) -> None:
    host = f"{name}.example" + (f":{port}" if port else "")
    assert not LOOPBACK.host_allowed(host)
    refusal = LOOPBACK.refusal("GET", "/api/v1/node", {"host": host})
    assert refusal is not None and "--api-allowed-hosts" in refusal


@given(st.sampled_from(["GET", "POST", "DELETE", "HEAD"]), LETTERS)
def test_healthz_answers_any_host(method: str, name: str) -> None:
    assert LOOPBACK.refusal(method, "/healthz", {"host": name}) is None


@given(
    st.sampled_from(["POST", "DELETE", "PUT", "PATCH"]),
    st.sampled_from(["origin", "referer"]),
    LETTERS,
    st.one_of(st.none(), PORTS),
)
def test_a_change_from_a_page_of_another_origin_is_refused(
    method: str, header: str, name: str, port: int | None
) -> None:
    page = (
        f"http://{name}.test" + (f":{port}" if port else "") + ("/x" if header == "referer" else "")
    )
    refusal = LOOPBACK.refusal(method, "/api/v1/files", {"host": "127.0.0.1:5000", header: page})
    assert refusal is not None and "--api-cors-origin" in refusal
    # Reads are not changes: a page of another origin cannot read the answer anyway.
    assert LOOPBACK.refusal("GET", "/api/v1/files", {"host": "127.0.0.1", header: page}) is None


def test_which_origins_may_change_the_node() -> None:
    host = {"host": "127.0.0.1:5000"}
    ok = [
        {},  # no page: curl, the CLI
        {"origin": "http://127.0.0.1:5000"},
        {"origin": "https://127.0.0.1:5000"},  # behind a TLS proxy
        {"referer": "http://127.0.0.1:5000/static/x?y#z"},
    ]
    refused = [
        {"origin": "http://127.0.0.1:5001"},  # another port is another origin
        {"origin": "http://127.0.0.2:5000"},
        {"origin": "http://localhost:5000"},  # another name is another origin
        {"origin": "null"},  # sandboxed frames, file:// pages
        {"origin": "garbage"},
        {"referer": "http://evil.test/"},
        {"origin": "http://evil.test", "referer": "http://127.0.0.1:5000/"},  # Origin wins
    ]
    for headers in ok:
        assert LOOPBACK.refusal("POST", "/shutdown", {**host, **headers}) is None, headers
    for headers in refused:
        assert LOOPBACK.refusal("POST", "/shutdown", {**host, **headers}), headers
    default_port = {"host": "localhost"}
    assert (
        LOOPBACK.refusal("DELETE", "/x", {**default_port, "origin": "http://localhost:80"}) is None
    )


def test_listed_origins_may_change_the_node() -> None:
    doors = Doors.for_node(
        ["127.0.0.1"], cors_origins=["https://ui.example:8443", "http://a.test:80"]
    )
    assert doors.origins == {"https://ui.example:8443", "http://a.test"}
    host = {"host": "127.0.0.1:5000"}
    for page in ("https://ui.example:8443", "http://a.test", "http://a.test:80"):
        assert doors.refusal("POST", "/api/v1/files", {**host, "origin": page}) is None, page
    for page in ("http://ui.example:8443", "https://ui.example", "http://b.test"):
        assert doors.refusal("POST", "/api/v1/files", {**host, "origin": page}), page
    with pytest.raises(ValueError, match="cors-origin"):
        Doors.for_node([], cors_origins=["ui.example"])
