# AstroKit: `make run` starts the platform, `make test` runs the tests.
# Both install whatever is missing first, so they work on a fresh machine.
SHELL := /bin/bash
# As root the hub runs each user's server under that user's own account, so the virtual
# environment must be built on an interpreter every account can run: Debian's, not one
# under /root (pyenv's), which other accounts cannot even reach.
PYTHON ?= $(shell if [ "$$(id -u)" = 0 ] && [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else echo python3; fi)
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
RUN_DIR ?= .run
STORE_DIR ?= $(RUN_DIR)/store
CHP := deploy/local/node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=

.PHONY: run stop test install lint format notebooks seed model bench clean browser slurm hostpkgs

# --- installation -----------------------------------------------------------------------
# jsonschema (via jupyter-events) imports rfc3987-syntax, if installed, for its "iri" format
# checker; rfc3987-syntax compiles ~40 Lark grammars at import: 2.3 CPU-seconds in every
# notebook server's start and in the hub's, for a format no Jupyter schema uses
# (python-jsonschema/jsonschema#1428, jupyter-server/jupyter_server#1559). Without it,
# jsonschema simply does not check "iri" strings.
UNINSTALL_SLOW_IMPORTS = $(PY) -m pip uninstall -q -y rfc3987-syntax
# torch first and pinned: 2.13.0 is a local CPU wheel; anything unpinned pulls GBs of CUDA.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,test]"
	$(UNINSTALL_SLOW_IMPORTS)
	@touch $@

$(CHP): deploy/local/package.json
	cd deploy/local && npm install --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's chromium for the real-browser tests (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: browser tests will be skipped (install Debian's chromium as root)"; fi; }

# Debian's Slurm for the Slurm-backend tests: they start their own one-node cluster on
# 127.0.0.1 (tests/helpers/slurm.py), and fail, saying why, where Slurm is missing.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
slurm:
	@{ test -x /usr/sbin/slurmctld && test -x /usr/sbin/slurmd && test -x /usr/sbin/munged \
	   && command -v sbatch >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null; \
	  else echo "Slurm missing: the tests in tests/slurm will fail (install $(SLURM_PACKAGES) as root)"; fi; }

# A root hub limits each user's Dask dashboard port to that user's account with an iptables
# owner rule (spawner/astrokit_spawner/firewall.py); a hub that is not root needs none.
hostpkgs:
	@command -v iptables >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends iptables >/dev/null; }

install: $(VENV)/.installed $(CHP) hostpkgs

# --- the platform -------------------------------------------------------------------------
seed: install
	$(BIN)/astrokit platform prepare --run-dir $(RUN_DIR) --examples tests/data/lamost \
	  --tutorials notebooks

run: install seed
	PATH="$(CURDIR)/deploy/local/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
	  ASTROKIT_RUN_DIR="$(CURDIR)/$(RUN_DIR)" \
	  $(BIN)/jupyterhub -f deploy/local/jupyterhub_config.py

# Users' servers outlive the hub process (a hub restart keeps their kernels): Ctrl-C on
# `make run` stops the hub and the proxy only; this ends every server it started.
stop: install
	$(BIN)/astrokit platform stop --run-dir $(RUN_DIR)

# --- tests and tooling --------------------------------------------------------------------
test: install browser slurm
	PATH="$(CURDIR)/deploy/local/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The teaching notebooks: edit notebooks/NN-name.py (jupytext percent script), then build the
# paired NN-name.ipynb from it (without outputs); tests/notebooks/test_paired.py checks both agree.
notebooks: install
	$(BIN)/jupytext --to ipynb --update notebooks/[0-9]*.py

# Each benchmark prints one JSON object; it is also kept in benchmarks/results/<name>.json,
# committed, so every number the README quotes can be traced to the run that produced it.
bench: install
	@mkdir -p benchmarks/results
	@for b in benchmarks/*.py; do n=$$(basename $$b .py); echo "== $$b"; \
	  PATH="$(CURDIR)/deploy/local/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
	  $(PY) $$b > benchmarks/results/$$n.json.tmp && mv benchmarks/results/$$n.json.tmp benchmarks/results/$$n.json \
	  && cat benchmarks/results/$$n.json; done

clean:
	rm -rf $(RUN_DIR) test-artifacts
