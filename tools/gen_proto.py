"""Generate src/chordshare/v1 from proto/chordshare/v1 (run by `make proto`).

`python tools/gen_proto.py [OUT_DIR]` writes the modules under OUT_DIR (default: src), so the
staleness test can generate into a temporary directory and compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTO_ROOT.glob("chordshare/v1/*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(s) for s in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "chordshare" / "v1").glob("*_pb2*.py*"))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src"
    for path in generate(out):
        print(path.relative_to(out))
