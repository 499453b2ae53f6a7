# Two entry points (see README): `make run` runs the default workflow on CPU, `make test` runs the tests.
# Both create/update the project environment in .venv/ first; a second call reinstalls nothing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED ?= $(abspath ../shared)
# Pretrained potentials: the shared folder beside the repo unless the user points elsewhere.
export SUPERION_MODELS ?= $(SHARED)/models
CONFIG ?= configs/default.yaml
CORES ?= 2

.PHONY: run test test-slurm venv smoke report clean-results

venv: $(STAMP)

# torch first, pinned: a bare torch requirement resolved by matgl would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete

smoke: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile configs/smoke.yaml --rerun-incomplete

# Self-contained HTML report of the last run of $(CONFIG) (every figure with its caption).
report: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG) --report results/$(basename $(notdir $(CONFIG)))/report.html

test: $(STAMP)
	$(VENV)/bin/pytest -q

# The smoke DAG through workflow/profiles/slurm on a throw-away one-node SLURM cluster (with and
# without accounting, kill -9 and rerun). Needs root and apt-get (installs slurm-wlm, slurmdbd,
# munge, mariadb-server if missing); says SKIPPED otherwise. See workflow/profiles/slurm/test/.
test-slurm: $(STAMP)
	bash workflow/profiles/slurm/test/run.sh

clean-results:
	rm -rf results/
