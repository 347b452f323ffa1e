# syntax=docker/dockerfile:1
# chordshare: one peer of the ring per container.
#
#   docker build -t chordshare:0.1.0 .
#   docker run --rm -e CHORDSHARE_ADVERTISE=HOST:7000 -p 7000:7000 -v chordshare-data:/data chordshare:0.1.0
#
# The node binds 0.0.0.0:7000 (gRPC: the ring, files, grpc.health.v1) and advertises
# CHORDSHARE_ADVERTISE, the name other peers reach this container at: never 0.0.0.0.
# The REST API listens on 127.0.0.1:8000 unless CHORDSHARE_API says otherwise.
# See docs/deployment.md.

# Any Debian-based image with Python 3.11 or later and its venv module will do
# (--build-arg BASE=...): where Docker Hub cannot be reached, one made from Debian's
# packages (tests/container/ builds one). The tag names a Python minor and a Debian release;
# pin a digest (python:3.11-slim-trixie@sha256:...) where builds must be reproducible.
ARG BASE=python:3.11-slim-trixie

FROM ${BASE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A virtual environment, also for the build tools: Debian's own python3 refuses pip
# installs into the system (PEP 668), and the official Python images accept both.
RUN python3 -m venv /opt/build
WORKDIR /src
# Only what the wheel needs (.dockerignore keeps the rest out of the context). Every
# dependency has a binary wheel for CPython 3.11 on x86-64 and arm64: no compiler needed.
COPY pyproject.toml README.md ./
COPY src ./src
# The wheels come from PyPI, unless the build context has a wheels/ folder (pip wheel
# --wheel-dir wheels . on a machine that reaches an index): then from that folder alone,
# for builders that reach no index, or not the one their host's pip is configured for.
RUN --mount=type=bind,target=/context \
    if [ -d /context/wheels ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/context/wheels; fi \
 && /opt/build/bin/pip wheel --wheel-dir /wheels .


FROM ${BASE}

LABEL org.opencontainers.image.title="chordshare" \
      org.opencontainers.image.description="Peer-to-peer file sharing on a self-healing Chord ring over gRPC" \
      org.opencontainers.image.licenses="MIT"

# The virtual environment's python comes first: `chordshare` and the health check's
# `python` are its own, whatever the base calls its interpreter.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/chordshare \
    PATH="/opt/chordshare/bin:$PATH"

# An unprivileged user that owns the data volume; uid/gid 10001 (Kubernetes: fsGroup 10001).
RUN groupadd --system --gid 10001 chordshare \
 && useradd --system --uid 10001 --gid chordshare --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin chordshare \
 && install -d -o chordshare -g chordshare -m 0750 /data \
 && install -d -m 0755 /etc/chordshare

# The project and its dependencies, from the builder's wheels only (no index): the wheels
# are mounted for this step, never copied into a layer. The environment is made here, by
# this stage's own interpreter, so its links point at a python this image has.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python3 -m venv /opt/chordshare \
 && /opt/chordshare/bin/pip install --no-cache-dir --no-index /wheels/*.whl

COPY deploy/node.example.yaml /etc/chordshare/node.yaml

# Numeric, so Kubernetes (runAsNonRoot) can tell it is not root.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 7000: gRPC between peers (and for the CLI); 8000: the REST API and dashboard.
EXPOSE 7000 8000

# SERVING once the node is on a ring (grpc.health.v1 on the gRPC port). Exit 0 healthy, 1 not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:7000')).Check(h.HealthCheckRequest(), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]

# SIGTERM (docker stop, Kubernetes) makes the node hand its files to its successor and
# leave the ring: give it time (compose: stop_grace_period, Kubernetes:
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["chordshare", "node"]
CMD ["--config", "/etc/chordshare/node.yaml"]
