"""Settings from a YAML file, CHORDSHARE_* variables and flags: precedence, one clear message
per bad value, and the address rules that keep a ring reachable across hosts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chordshare.config import ConfigError, NodeConfig, load_config
from chordshare.files.publisher import Signer, key_text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path


def test_flags_win_over_environment_which_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(
        tmp_path,
        "bind: 0.0.0.0:7000\nadvertise: node-1.example:7000\njoin: node-0.example:7000\n"
        "replicas: 2\nmax_store: 10GiB\nlog_format: json\napi: 0.0.0.0:8000\n"
        "scrub_rate: 8M\n",
    )
    from_file = load_config(file, {})
    assert from_file.advertise == "node-1.example:7000" and from_file.replicas == 2
    assert from_file.max_store == 10 * 1024**3 and from_file.log_format == "json"
    assert from_file.scrub_rate == 8_000_000
    assert load_config(file, {"scrub_rate": "0"}).scrub_rate == 0  # scrubbing off
    monkeypatch.setenv("CHORDSHARE_REPLICAS", "4")
    monkeypatch.setenv("CHORDSHARE_ADVERTISE", "node-9.example:7000")
    from_env = load_config(file, {})
    assert from_env.replicas == 4 and from_env.advertise == "node-9.example:7000"
    from_flags = load_config(file, {"replicas": 5, "advertise": None, "bits": None})
    assert from_flags.replicas == 5  # flags left unset (None) do not hide the others
    assert from_flags.advertise == "node-9.example:7000"
    assert load_config(None, {"bind": "127.0.0.1:0"}).api == "127.0.0.1:0"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "bind: required"),
        ({"bind": "nowhere"}, "bind: malformed address 'nowhere'"),
        ({"bind": "127.0.0.1:0", "bits": 2}, "bits must be between 3 and 160"),
        ({"bind": "127.0.0.1:0", "replicas": 0}, "replicas must be at least 1"),
        ({"bind": "127.0.0.1:0", "max_store": "lots"}, "max_store: 'lots' is not a size"),
        ({"bind": "127.0.0.1:0", "scrub_rate": "fast"}, "scrub_rate: 'fast' is not a size"),
        (
            {"bind": "127.0.0.1:0", "unfinished_put_ttl": "a while"},
            "unfinished_put_ttl: 'a while' is not a duration",
        ),
        ({"bind": "127.0.0.1:0", "unfinished_put_ttl": "-5"}, "unfinished_put_ttl: "),
        ({"bind": "127.0.0.1:0", "log_level": "loud"}, "log_level: Input should be"),
        ({"bind": "127.0.0.1:0", "id": 40, "bits": 5}, "id 40 is outside 0..31"),
        ({"bind": "0.0.0.0:7000"}, "give --advertise"),
        (
            {"bind": "127.0.0.1:0", "admin_keys": "ed25519:short"},
            "admin_keys: 'ed25519:short' is not a public key",
        ),
        ({"bind": "0.0.0.0:7000", "advertise": "[::]:7000"}, "is a wildcard address"),
        (
            {"bind": "127.0.0.1:7001", "join": "10.1.2.3:7000"},
            "advertise 127.0.0.1:7001 is a loopback address, but join 10.1.2.3:7000",
        ),
    ],
)
def test_a_bad_setting_is_one_message_naming_it(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError) as bad:
        load_config(None, flags)
    assert message in str(bad.value)
    assert "\n" not in str(bad.value)


def test_a_bad_file_is_one_message(tmp_path: Path) -> None:
    cases = {
        "bind: 127.0.0.1:0\ncolour: blue\n": "colour: is not a setting",
        "bind: [unclosed\n": "not valid YAML",
        "- just\n- a list\n": "expected settings",
        "bind: 127.0.0.1:0\nreplicas: many\n": "replicas: Input should be a valid integer",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as bad:
            load_config(write(tmp_path, text), {})
        assert message in str(bad.value), (text, str(bad.value))
    with pytest.raises(ConfigError, match=r"(?i)no such file"):
        load_config(tmp_path / "missing.yaml", {})


def test_the_example_file_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "node.example.yaml"
    if not example.exists():
        pytest.fail("deploy/node.example.yaml is missing")
    # As a container runs it: the address to advertise comes from CHORDSHARE_ADVERTISE.
    config = load_config(example, {"advertise": "node-2.example:7000"})
    assert isinstance(config, NodeConfig) and config.bind == "0.0.0.0:7000"
    with pytest.raises(ConfigError, match="give --advertise"):
        load_config(example, {})  # a wildcard bind is never advertised


def test_security_settings_come_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(
        "bind: 127.0.0.1:7000\n"
        "cluster_token_file: /etc/chordshare/cluster.token\n"
        "tls_ca: /etc/chordshare/ca.pem\n"
    )
    monkeypatch.setenv("CHORDSHARE_API_TOKEN_FILE", "/run/secrets/api.token")
    monkeypatch.setenv("CHORDSHARE_API_PROTECT_READS", "true")
    conf = load_config(config, {})
    assert conf.cluster_token_file == Path("/etc/chordshare/cluster.token")
    assert conf.tls_ca == Path("/etc/chordshare/ca.pem")
    assert conf.api_token_file == Path("/run/secrets/api.token")
    assert conf.api_protect_reads is True


def test_admin_keys_come_as_a_list_or_one_comma_separated_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = (key_text(Signer.generate().publisher) for _ in range(2))
    config = tmp_path / "node.yaml"
    config.write_text(f"bind: 127.0.0.1:7000\nadmin_keys: [{one}]\n")
    assert load_config(config, {}).admin_keys == [one]
    monkeypatch.setenv("CHORDSHARE_ADMIN_KEYS", f"{one}, {two}")
    assert load_config(config, {}).admin_keys == [one, two]
    assert load_config(config, {"admin_keys": [two]}).admin_keys == [two]


def test_the_api_listens_on_loopback_beside_the_peer_port_unless_told() -> None:
    from chordshare.config import default_api

    assert load_config(None, {"bind": "127.0.0.1:7000"}).api == "127.0.0.1:8000"
    wildcard = load_config(None, {"bind": "0.0.0.0:7001", "advertise": "10.0.0.2:7001"})
    assert wildcard.api == "127.0.0.1:8001"  # never beyond loopback unless asked
    assert default_api("127.0.0.1:0") == "127.0.0.1:0"  # a free port, as the node's own
    assert default_api("127.0.0.1:64536") == "127.0.0.1:0"  # no port + 1000 to take
    assert default_api("127.0.0.1:64535") == "127.0.0.1:65535"
    assert load_config(None, {"bind": "127.0.0.1:7000", "api": "off"}).api == "off"
    given = load_config(None, {"bind": "127.0.0.1:7000", "api": "[::1]:9000"})
    assert given.api == "[::1]:9000"


def test_share_replicate_is_a_flag_a_variable_and_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    base = {"bind": "127.0.0.1:0", "share": str(shared)}
    assert load_config(None, base).share_replicate is False  # off unless asked for
    assert load_config(None, {**base, "share_replicate": True}).share_replicate is True
    config = tmp_path / "node.yaml"
    config.write_text(f"bind: 127.0.0.1:0\nshare: {shared}\nshare_replicate: true\n")
    assert load_config(config, {}).share_replicate is True
    monkeypatch.setenv("CHORDSHARE_SHARE_REPLICATE", "false")
    assert load_config(config, {}).share_replicate is False  # the environment wins
    with pytest.raises(ConfigError, match="give share"):
        load_config(None, {"bind": "127.0.0.1:0", "share_replicate": True})


def test_how_long_a_cut_off_put_is_kept_comes_from_a_flag_a_variable_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path, "bind: 127.0.0.1:0\nunfinished_put_ttl: 30m\n")
    assert load_config(None, {"bind": "127.0.0.1:0"}).unfinished_put_ttl == 3600  # an hour
    assert load_config(file, {}).unfinished_put_ttl == 1800
    monkeypatch.setenv("CHORDSHARE_UNFINISHED_PUT_TTL", "2h")
    assert load_config(file, {}).unfinished_put_ttl == 7200
    assert load_config(file, {"unfinished_put_ttl": "90s"}).unfinished_put_ttl == 90
    assert load_config(file, {"unfinished_put_ttl": "0"}).unfinished_put_ttl == 0  # none kept


def test_rate_limits_come_from_the_file_the_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(
        tmp_path,
        "bind: 127.0.0.1:7000\nmax_upload_rate: 4M\nmax_download_rate: 1000\n"
        "max_repair_rate: 1MiB/s\n",
    )
    conf = load_config(file, {})
    assert (conf.max_upload_rate, conf.max_download_rate) == (4_000_000, 1000)
    assert conf.max_repair_rate == 1024 * 1024
    monkeypatch.setenv("CHORDSHARE_MAX_UPLOAD_RATE", "500K")
    assert load_config(file, {}).max_upload_rate == 500_000
    assert load_config(file, {"max_upload_rate": "0"}).max_upload_rate == 0  # no limit
    assert load_config(None, {"bind": "127.0.0.1:0"}).max_repair_rate == 0  # none unless set


@pytest.mark.parametrize("key", ["max_upload_rate", "max_download_rate", "max_repair_rate"])
@pytest.mark.parametrize("value", ["-1", "abc", -1, "4Q", "1.5.0M"])
def test_a_bad_rate_is_one_message_wherever_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: object
) -> None:
    said = re.compile(rf"{key}: '?{re.escape(str(value))}'? is not a rate \(bytes per second")
    flags = {"bind": "127.0.0.1:0"}
    with pytest.raises(ConfigError) as by_flag:
        load_config(None, {**flags, key: value})
    file = write(tmp_path, f"bind: 127.0.0.1:0\n{key}: {value}\n")
    with pytest.raises(ConfigError) as by_file:
        load_config(file, {})
    monkeypatch.setenv(f"CHORDSHARE_{key.upper()}", str(value))
    with pytest.raises(ConfigError) as by_env:
        load_config(None, flags)
    for bad in (by_flag, by_file, by_env):
        message = str(bad.value)
        assert "\n" not in message and said.search(message), message
