"""A member that turns: a node process whose catalog holds a version of another user's file
signed by its own key, and a removal of another, offers both to the other holders in its
repair rounds. Every honest holder refuses them: the file keeps its publisher's bytes, and
the removed one stays."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import Processes, cli_json, eventually, free_port, run_cli

from chordshare.files.publisher import Signer
from chordshare.sharing.chunking import manifest_of
from chordshare.storage.identity import create_identity
from chordshare.storage.store import NodeStore

pytestmark = [pytest.mark.processes, pytest.mark.system, pytest.mark.timeout(240)]

REPAIR_PERIOD = 10.0  # a node's default


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def listing(address: str) -> dict[str, dict]:
    return {f["name"]: f for f in cli_json("ls", "--node", address)["files"]}


def test_a_forged_version_pushed_through_repair_is_refused_by_every_honest_holder(
    procs: Processes, tmp_path: Path
) -> None:
    alice_key = tmp_path / "alice.pem"
    alice = create_identity(alice_key)
    mallory = Signer.generate()
    first = procs.start()
    port = free_port()
    turned_dir = tmp_path / "turned"
    turned = procs.start(
        join=first.address, bind=f"127.0.0.1:{port}", extra=["--data-dir", str(turned_dir)]
    )
    procs.start(join=first.address)
    deed, other = tmp_path / "deed.txt", tmp_path / "other.txt"
    deed.write_bytes(os.urandom(3000))
    other.write_bytes(b"keep me")
    for path in (deed, other):
        run_cli("put", str(path), "--identity", str(alice_key), "--node", first.address)

    # Three nodes, three copies: the turned node holds both once repair has run.
    def turned_holds() -> None:
        assert {"deed.txt", "other.txt"} <= set(listing(turned.address))

    eventually(turned_holds, 6 * REPAIR_PERIOD)
    stored = listing(first.address)["deed.txt"]
    assert stored["publisher"] == alice.fingerprint

    turned.kill9()
    store = NodeStore(turned_dir)
    try:
        held = store.manifest("deed.txt")
        assert held is not None
        evil = b"the deed now names mallory"
        made_up = manifest_of(evil, "deed.txt", held.chunk_size, held.created + 60)
        claim = mallory.sign("deed.txt", made_up.created, made_up.content)
        store.put_chunk(evil, made_up.chunks[0])
        store.commit(replace(made_up, claim=claim))
        later = held.created + 120
        store.remove("other.txt", later, None, mallory.sign("other.txt", later, b"", True))
    finally:
        store.close()
    turned = procs.start(
        join=first.address, bind=f"127.0.0.1:{port}", extra=["--data-dir", str(turned_dir)]
    )
    assert listing(turned.address)["deed.txt"]["publisher"] == mallory.fingerprint

    # The turned node offers its versions in its repair rounds (to the names' owners, which
    # pass on nothing they refused); the honest holders say they refused them.
    honest = [n for n in procs.live() if n is not turned]

    def refused_by_an_owner() -> None:
        logs = "".join(node.log() for node in honest)
        for name in ("deed.txt", "other.txt"):
            assert f"refused a version of {name!r} a peer offered" in logs, name

    eventually(refused_by_an_owner, 4 * REPAIR_PERIOD)

    def kept() -> None:
        for node in honest:
            files = listing(node.address)
            assert files["deed.txt"]["sha256"] == stored["sha256"], node.address
            assert files["deed.txt"]["publisher"] == alice.fingerprint
            assert "other.txt" in files, node.address

    # Two more repair periods of offers and answers between all three: nothing changes.
    until = time.monotonic() + 2 * REPAIR_PERIOD
    while time.monotonic() < until:
        kept()
        time.sleep(1.0)
    # The honest holders keep the publisher's very bytes. (A getter asks the name's owner
    # first: were the turned node the owner, it would be told of its version.)
    assert stored["sha256"] == hashlib.sha256(deed.read_bytes()).hexdigest()
