"""Publisher keys from the command line: `chordshare id`, the key the first put creates,
and one line with exit 2 for a change by another key. The CLI runs in processes of its
own against real peers of this process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from clirun import run_cli
from peernet import PeerNetwork


async def cli(*args: str, home: Path, identity: Path | None = None) -> tuple[int, str, str]:
    """Run one `chordshare` command as a user whose config directory is `home`."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    env.pop("CHORDSHARE_IDENTITY", None)
    if identity is not None:
        env["CHORDSHARE_IDENTITY"] = str(identity)
    return await run_cli(*args, env=env)


async def test_id_new_writes_a_key_only_its_owner_reads_and_never_overwrites_one(
    tmp_path: Path,
) -> None:
    key = tmp_path / "keys" / "me.pem"
    code, out, _ = await cli("id", "new", str(key), "--json", home=tmp_path)
    assert code == 0
    made = json.loads(out)
    assert made["path"] == str(key) and made["public_key"].startswith("ed25519:")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    code, out, err = await cli("id", "new", str(key), home=tmp_path)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "never overwritten" in err
    assert key.read_bytes() == before
    code, out, _ = await cli("id", "show", "--json", home=tmp_path, identity=key)
    assert code == 0 and json.loads(out) == made
    for bad in (tmp_path / "missing.pem", tmp_path / "garbage.pem"):
        if bad.name == "garbage.pem":
            bad.write_text("not a key")
        code, out, err = await cli("id", "show", "--identity", str(bad), home=tmp_path)
        assert (code, out) == (2, "") and err.count("\n") == 1, err


async def test_only_the_key_that_put_a_file_replaces_or_removes_it(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    node = peer.server.node.me.address
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    path = tmp_path / "plan.txt"
    path.write_bytes(b"alice's plan")

    code, _, err = await cli("put", str(path), "-n", node, home=alice_home)
    assert code == 0, err
    default = alice_home / "chordshare" / "identity.pem"
    assert "created your publisher key" in err and str(default) in err
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    code, out, _ = await cli("id", "show", "--json", home=alice_home)
    fingerprint = json.loads(out)["fingerprint"]
    code, out, _ = await cli("ls", "-n", node, "--json", home=alice_home)
    assert json.loads(out)["files"][0]["publisher"] == fingerprint
    code, out, _ = await cli("ls", "-n", node, home=alice_home)
    assert fingerprint in out

    path.write_bytes(b"bob's plan")
    code, _, err = await cli("id", "new", home=bob_home)
    assert code == 0, err
    for command in (("put", str(path), "--replace"), ("rm", "plan.txt")):
        code, out, err = await cli(*command, "-n", node, home=bob_home)
        assert (code, out) == (2, ""), (command, out, err)
        assert err.count("\n") == 1 and f"belongs to key {fingerprint}" in err, err
    assert peer.store.read_chunk(peer.store.manifest("plan.txt").chunks[0]) == b"alice's plan"

    code, _, err = await cli("put", str(path), "--replace", "-n", node, home=alice_home)
    assert code == 0, err
    code, _, err = await cli("rm", "plan.txt", "-n", node, home=alice_home)
    assert code == 0, err
    assert peer.store.manifest("plan.txt") is None

    missing = tmp_path / "nobody.pem"
    code, out, err = await cli("put", str(path), "-n", node, home=alice_home, identity=missing)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "no publisher key" in err
    assert peer.store.manifest("plan.txt") is None and not missing.exists()
