"""File names as the CLI and the console print them: a name the new-name rule refuses is
one line of error for `chordshare put`; a name stored before that rule is listed, found,
fetched and removed with its control characters escaped, never raw; Rich markup in a name
is printed as it is; --json keeps names exact. The CLI runs in processes of its own against
real peers of this process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from clirun import run_cli as cli
from peernet import PeerNetwork, store_directly
from refused_names import ONE_OF_EACH_KIND
from waiting import wait_until

from chordshare.faces.console import ChordConsole
from chordshare.faces.console_completion import completable
from chordshare.sharing.peer import SharingPeer

REFUSED = ONE_OF_EACH_KIND

# Stored before the rule: an escape sequence that would colour the terminal, and a bidi
# override that would show the rest of the line reversed.
ESCAPED = "esc\x1b[31mred report.txt"
BIDI = "bidi\u202eevil report.txt"
MARKUP = "[bold]x report.txt"


def address(peer: SharingPeer) -> str:
    return peer.server.node.me.address


def assert_shown_escaped(text: str) -> None:
    """The names stored before the rule appear escaped, and no raw control character does."""
    assert "esc\\x1b[31mred report.txt" in text, text
    assert "bidi\\u202eevil report.txt" in text, text
    assert "\x1b" not in text and "\u202e" not in text, repr(text)


async def test_put_refuses_each_refused_kind_with_one_line(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    peer = await ring.start()
    (tmp_path / "file").write_bytes(b"some bytes")
    runs = await asyncio.gather(
        *(
            cli("put", str(tmp_path / "file"), "--name", f"bad{char}name", "-n", address(peer))
            for char, _ in REFUSED
        )
    )
    for (char, code), (exit_code, out, err) in zip(REFUSED, runs, strict=True):
        assert exit_code == 2, (code, out, err)
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, (code, err)
        assert lines[0].startswith("error: ") and code in lines[0], lines[0]
        assert char not in lines[0], (code, err)
    assert peer.store.manifests() == []


async def test_names_from_the_network_are_printed_escaped(
    ring: PeerNetwork, tmp_path: Path
) -> None:
    a, b = await ring.ring(2)
    data = b"bytes stored before names were checked"
    store_directly(a, ESCAPED, data)
    store_directly(b, BIDI, data + b"!")
    (tmp_path / "file").write_bytes(b"markup")
    code, out, err = await cli("put", str(tmp_path / "file"), "--name", MARKUP, "-n", address(a))
    assert code == 0, err
    assert f"stored {MARKUP} (" in out  # not bold, and the brackets kept

    def indexed() -> bool:
        entries = [e for p in ring.live() for e in p.service.soft.index.get("word:report")]
        return {e.name for e in entries} == {ESCAPED, BIDI, MARKUP}  # type: ignore[attr-defined]

    await wait_until(indexed, 20, "the three names to be indexed")
    for args in (("ls", "--all"), ("ls",), ("search", "report")):
        code, out, err = await cli(*args, "-n", address(b))
        assert code == 0, err
        assert_shown_escaped(out)
        assert MARKUP in out, out

    code, out, err = await cli("ls", "--all", "--json", "-n", address(b))
    assert code == 0, err
    assert {f["name"] for f in json.loads(out)["files"]} == {ESCAPED, BIDI, MARKUP}

    got = tmp_path / "got"
    code, out, err = await cli("get", ESCAPED, "-o", str(got), "-n", address(b))
    assert code == 0, err
    assert "got esc\\x1b[31mred report.txt (" in out and "\x1b" not in out, repr(out)
    assert got.read_bytes() == data

    code, out, err = await cli("rm", BIDI, "-n", address(a))
    assert code == 0, err
    assert out.strip() == "removed bidi\\u202eevil report.txt", repr(out)
    await wait_until(
        lambda: all(p.store.manifest(BIDI) is None for p in ring.live()), 10, "the removal"
    )

    code, out, err = await cli("get", BIDI, "-n", address(b))
    assert code == 2
    assert "bidi\\u202eevil report.txt" in err and "\u202e" not in err, repr(err)


def test_the_console_prints_messages_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    ChordConsole.error(f"no file named {ESCAPED} in [bold]the network")
    err = capsys.readouterr().err
    assert "esc\\x1b[31mred report.txt" in err and "\x1b" not in err, repr(err)
    assert "[bold]the network" in err


def test_tab_completion_offers_only_names_a_terminal_shows_as_they_are() -> None:
    assert completable([ESCAPED, BIDI, MARKUP, "v1..2.txt", "tab\tname"]) == [
        MARKUP,
        "v1..2.txt",
    ]
