"""The generated code in src/chordshare/v1 must match proto/: run `make proto` when this fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():  # tools/ is not a package; load the script as a module
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = load_generator().generate(tmp_path)
    assert fresh, "protoc generated nothing"
    committed_dir = ROOT / "src" / "chordshare" / "v1"
    for path in fresh:
        committed = committed_dir / path.name
        assert committed.exists(), f"{path.name} is missing: run `make proto`"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{path.name} is stale: run `make proto`"
        )
    generated_names = {p.name for p in fresh}
    leftovers = {p.name for p in committed_dir.glob("*_pb2*.py*")} - generated_names
    assert not leftovers, f"generated files without a .proto: {leftovers}"
