"""What building the image needs on a machine that reaches Debian's packages and PyPI (through
its own pip configuration) but not Docker Hub.

- A base image made from Debian's packages: mmdebstrap writes a minimal bookworm with
  Python, `podman import` makes it an image. It is kept under a tag that names its recipe,
  so later runs reuse it and a changed recipe makes a new one.
- A build context: a copy of the repository (its .dockerignore still decides what the build
  sees) with a wheels/ folder holding every wheel the build installs. The host's pip makes
  them, since only the host's pip knows this machine's index and CA bundle; the Dockerfile's
  builder stage then installs from that folder alone.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from podman_runner import Podman, tail

ROOT = Path(__file__).resolve().parents[2]
BASE_SUITE = "bookworm"
# python3-venv brings ensurepip's own pip, so the image makes its virtual environment
# without an index.
BASE_PACKAGES = ("python3", "python3-venv")
# An imported file system has no image configuration: give it what a Debian image has.
BASE_CHANGES = (
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD=["/bin/bash"]',
)
BASE_DEADLINE = 900.0  # fetching and unpacking about 100 Debian packages
WHEELS_DEADLINE = 600.0
# Never part of a build context; the .dockerignore filters the rest, as in any build.
NOT_COPIED = (
    ".git",
    ".venv",
    "build",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
)


def run(argv: list[str], timeout: float) -> str:
    """Run a host command that must succeed; its standard output."""
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout: {tail(result.stdout)}\nstderr: {tail(result.stderr)}"
        )
    return result.stdout


def base_image_tag() -> str:
    """Names the recipe, so that a changed one makes a new base instead of reusing the old."""
    recipe = " ".join((BASE_SUITE, *BASE_PACKAGES, *BASE_CHANGES))
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"localhost/chordshare-test-base:{BASE_SUITE}-{digest}"


def ensure_base_image(podman: Podman, mmdebstrap: str, workdir: Path) -> str:
    """The base image's reference, made first when no earlier run left it."""
    tag = base_image_tag()
    if podman.image_exists(tag):
        return tag
    rootfs = workdir / "rootfs.tar"
    include = ",".join(BASE_PACKAGES)
    run(
        [mmdebstrap, "--variant=minbase", f"--include={include}", BASE_SUITE, str(rootfs)],
        BASE_DEADLINE,
    )
    changes = [f"--change={change}" for change in BASE_CHANGES]
    podman.run("import", *changes, str(rootfs), tag)
    rootfs.unlink()
    return tag


def python_minor(podman: Podman, image: str) -> tuple[int, int]:
    """The Python version of the image's python3."""
    out = podman.run_once(image, "python3", "-c", "import sys; print(*sys.version_info[:2])")
    major, minor = out.split()
    return int(major), int(minor)


def build_context(dest: Path) -> Path:
    """A copy of the repository at dest, with wheels/ holding the project's dependencies and
    its build backend; the project itself is built in the image, from the copied sources."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*NOT_COPIED))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*pyproject["build-system"]["requires"], *pyproject["project"]["dependencies"]]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            f"--wheel-dir={dest / 'wheels'}",
            *requirements,
        ],
        WHEELS_DEADLINE,
    )
    return dest
