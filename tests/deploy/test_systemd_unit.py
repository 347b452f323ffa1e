"""The systemd unit and its settings file (deploy/systemd/): the unit runs the installed
command on the settings file, keeps the node's data where the settings say, and passes
`systemd-analyze verify` without a warning."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from required import unavailable

from chordshare.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "chordshare.service"
SETTINGS = ROOT / "deploy" / "systemd" / "node.yaml"
INSTALLED = "/opt/chordshare/bin/chordshare"


def service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(UNIT)
    return unit["Service"]


def environment(section: configparser.SectionProxy) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in section["Environment"].split())


def test_the_unit_runs_the_installed_node_on_its_settings_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    section = service()
    assert section["ExecStart"] == f"{INSTALLED} node --config /etc/chordshare/node.yaml"
    env = environment(section)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conf = load_config(SETTINGS, {})
    # The data directory is the state directory systemd makes and keeps for the unit.
    assert conf.data_dir == Path("/var/lib") / section["StateDirectory"]
    assert conf.bind == "0.0.0.0:7000" and conf.advertise is not None
    assert conf.api == "127.0.0.1:8000"


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (Debian: apt-get install systemd)")
    installed = Path(sys.executable).with_name("chordshare")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED, str(installed)))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
