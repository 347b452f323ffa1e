"""Links: what `Link` writes reads back the same, and anything else is refused with what is
wrong with it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files.links import MAX_VIA, BadLink, Link, make_link, parse_link

ID = bytes(range(32))
names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=60,
).filter(lambda n: n not in (".", "..") and n.strip() == n)
addresses = st.builds(
    lambda host, port: f"{host}:{port}",
    st.sampled_from(["127.0.0.1", "10.0.0.7", "node-2.example", "[::1]", "[fe80::1]"]),
    st.integers(1, 65535),
)


@given(st.binary(min_size=32, max_size=32), names, st.lists(addresses, min_size=1, max_size=12))
def test_a_link_reads_back_as_it_was_written(manifest_id: bytes, name: str, via: list[str]) -> None:
    link = make_link(manifest_id, name, via)
    text = str(link)
    assert "\n" not in text and " " not in text
    assert parse_link(text) == link
    assert len(link.via) == min(len(set(via)), MAX_VIA)


GOOD = str(Link(ID, "holiday photo.jpg", ("127.0.0.1:7000",)))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://example.org/x", "starts with chordshare://"),
        ("chordshare:" + ID.hex(), "starts with chordshare://"),
        (GOOD.replace(ID.hex(), ID.hex()[:40]), "64 hexadecimal digits"),
        (GOOD.replace(ID.hex(), "z" * 64), "64 hexadecimal digits"),
        (GOOD.split("?")[0], "names no node"),
        (f"chordshare://{ID.hex()}/?via=127.0.0.1:7000", "names no file"),
        (f"chordshare://{ID.hex()}?via=127.0.0.1:7000", "names no file"),
        (GOOD.replace("127.0.0.1:7000", "127.0.0.1"), "is not HOST:PORT"),
        (GOOD.replace("127.0.0.1:7000", "127.0.0.1:99999"), "is not HOST:PORT"),
        (GOOD.replace("7000", "7000&via=a b:1"), "is not HOST:PORT"),
        (f"chordshare://{ID.hex()}/a%00b?via=h:1", "not one a file can have"),
        (f"chordshare://{ID.hex()}/a%2F..%2Fb?via=h:1", "not one a file can have"),
        (f"chordshare://{ID.hex()}/..?via=h:1", "not one a file can have"),
        (GOOD + "&via=h:2" * MAX_VIA, f"at most {MAX_VIA} nodes"),
        (GOOD + "x" * 5000, "at most 4096 characters"),
    ],
)
def test_a_malformed_or_truncated_link_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(BadLink, match=problem.replace("(", r"\(")):
        parse_link(text)
