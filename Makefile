# One-command entry points; each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-system install lint proto bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chordshare demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of docs/architecture.md
	$(BIN)/pytest -q -rs  # -rs: every skipped test says why

# The tests that take minutes: the wheel installed into a fresh venv, the image built with
# podman (on a base made from Debian's packages) and run as a ring of three containers, hosts
# in network namespaces, and schemathesis over the REST API.
test-system: $(STAMP)
	$(BIN)/pytest -q -rs -m system

# Puts `chordshare` on PATH for this user: pipx (an environment of its own) when it is
# installed, else pip's user site.
install:
	@if command -v pipx >/dev/null; then pipx install --force .; \
	else $(PYTHON) -m pip install --user . && \
	echo "chordshare is in $$($(PYTHON) -m site --user-base)/bin: put that on PATH"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/ruff format --check src tests bench

# Regenerates src/chordshare/v1 from proto/; tests/test_proto_fresh.py fails when it is stale.
proto: $(STAMP)
	$(BIN)/python tools/gen_proto.py

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/hops.py
	$(BIN)/python bench/failure.py
	$(BIN)/python bench/membership.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/transfer.py
	$(BIN)/python bench/small_files.py
	$(BIN)/python bench/multisource.py
	$(BIN)/python bench/ratelimit.py

# Not part of `make bench`: the churn soak alone takes about 15 minutes (64 node processes,
# 10 minutes of churn, then convergence, repair and a check of every file).
soak: $(STAMP)
	$(BIN)/python bench/churn_soak.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
