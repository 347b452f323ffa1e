"""Podman as these machines run it, and a record of what a test made with it.

Every command goes through `Podman.run` with the flags podman needs here: runc and cgroupfs
(crun refuses the hybrid cgroup layout, and no systemd runs to manage cgroups), and explicit
ulimits for whatever starts a container, a build's RUN steps included (podman's default
open-files limit is above the hard limit a process may set here, so runc's setrlimit is
refused). Each container, network and image made through `Podman` is recorded before it
is made, and `cleanup` removes every one of them, in whatever state it is; an image it
did not make (a cached base) is never touched.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GLOBAL_FLAGS = ("--cgroup-manager=cgroupfs", "--runtime=runc")
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
COMMAND_DEADLINE = 120.0
CLEANUP_DEADLINE = 60.0
OUTPUT_TAIL = 4000  # characters of a failed command's output kept in its error


class PodmanError(AssertionError):
    """A podman command that had to succeed failed (an AssertionError, so a polling loop
    may retry it)."""


def tail(text: str) -> str:
    return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]


@dataclass
class Podman:
    """Runs podman and remembers the containers, networks and images it made, all named
    with `prefix` so that runs side by side do not meet."""

    binary: str
    prefix: str
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def run(
        self, *args: str, timeout: float = COMMAND_DEADLINE, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *GLOBAL_FLAGS, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {tail(result.stdout)}\nstderr: {tail(result.stderr)}"
            )
        return result

    def image_exists(self, reference: str) -> bool:
        return self.run("image", "exists", reference, check=False).returncode == 0

    def build(self, tag: str, context: Path, build_args: dict[str, str], timeout: float) -> None:
        """Build context/Dockerfile as `tag`, leaving no image but `tag` behind."""
        self.images.append(tag)
        arguments = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        self.run(
            "build",
            # The OCI format has no HEALTHCHECK or STOPSIGNAL: podman would drop both.
            "--format=docker",
            # No cached layers and no image per stage: the builder stage leaves nothing.
            "--layers=false",
            "--force-rm",
            *ULIMITS,
            *arguments,
            f"--tag={tag}",
            f"--file={context / 'Dockerfile'}",
            str(context),
            timeout=timeout,
        )

    def create_network(self, name: str) -> None:
        self.networks.append(name)
        self.run("network", "create", name)

    def start(self, name: str, image: str, network: str, env: dict[str, str]) -> None:
        """Start a detached container from the image's own entry point and command."""
        self.containers.append(name)
        variables = [f"--env={key}={value}" for key, value in env.items()]
        self.run(
            "run", "--detach", f"--name={name}", f"--network={network}", *ULIMITS, *variables, image
        )

    def run_once(self, image: str, *argv: str) -> str:
        """Run argv in a new container of the image, removed when it exits; its output."""
        name = f"{self.prefix}-once{len(self.containers)}"
        self.containers.append(name)
        return self.run("run", "--rm", f"--name={name}", *ULIMITS, image, *argv).stdout

    def exec(self, container: str, *argv: str, timeout: float = COMMAND_DEADLINE) -> str:
        """Run argv in the container as its user; its standard output."""
        return self.run("exec", container, *argv, timeout=timeout).stdout

    def copy(self, source: str, destination: str) -> None:
        """podman cp: one side is CONTAINER:PATH."""
        self.run("cp", source, destination)

    def inspect(self, container: str) -> dict[str, Any]:
        (found,) = json.loads(self.run("container", "inspect", container).stdout)
        return found

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False)
        return result.stdout + result.stderr

    def cleanup(self) -> None:
        """Remove every container (with its anonymous /data volume), network and image
        made through this object; raise at the end if any of them is still there."""
        failures = []
        if self.containers:
            result = self.run(
                "rm",
                "--force",
                "--volumes",
                "--ignore",
                "--time=0",
                *self.containers,
                timeout=CLEANUP_DEADLINE,
                check=False,
            )
            if result.returncode != 0:
                failures.append(f"containers: {result.stderr.strip()}")
        for network in self.networks:
            if self.run("network", "exists", network, check=False).returncode != 0:
                continue
            result = self.run(
                "network", "rm", "--force", network, timeout=CLEANUP_DEADLINE, check=False
            )
            if result.returncode != 0:
                failures.append(f"network {network}: {result.stderr.strip()}")
        if self.images:
            result = self.run(
                "rmi", "--force", "--ignore", *self.images, timeout=CLEANUP_DEADLINE, check=False
            )
            if result.returncode != 0:
                failures.append(f"images: {result.stderr.strip()}")
        if failures:
            raise PodmanError("podman left behind: " + "; ".join(failures))
