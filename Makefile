# Two commands do everything on a fresh machine:
#   make demo   - virtualenv, install, and the whole pipeline over the seeds (127.0.0.1) into DuckDB
#   make test   - virtualenv, install (with the dev and airflow extras), and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
AIRFLOW_STAMP := $(VENV)/.installed-airflow

# `make` alone lists the targets (it used to create .venv and install pip, the
# first rule's work).
.DEFAULT_GOAL := help
.PHONY: help demo test lint bench clean

help:
	@echo "make demo                 the whole pipeline over the seed articles (127.0.0.1) into newsmon-demo/"
	@echo "make test                 the test suite (dev and airflow extras; what CI runs: .ci/run)"
	@echo "make lint                 ruff and mypy --strict"
	@echo "make bench                every benchmark (~15 min); rewrites BENCHMARKS.md's figures"
	@echo "make airflow-standalone   Airflow on http://localhost:8080 with dags/, state in .airflow/"
	@echo "make airflow-init         migrate .airflow/'s metadata database, create the pool newsmon_duckdb"
	@echo "make airflow-test         the Airflow tests (tests/airflow)"
	@echo "make clean                remove .venv, newsmon-demo, .airflow and the caches"
	@echo "The targets that run newsmon create .venv and install it there first when needed."

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/newsmon demo

# The tests include the Airflow ones (DAG integrity, dag.test(), the real scheduler
# on PostgreSQL), so they install the airflow extra too. They run in two
# pytest-xdist workers (tests/conftest.py says which tests share one; BENCHMARKS.md,
# sessions 26 and 27); `make test PYTEST_ARGS=` runs them serially, in one process.
PYTEST_ARGS ?= -n 2
test: $(AIRFLOW_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) newsmon-demo .airflow .pytest_cache .mypy_cache .ruff_cache

# -- Airflow ---------------------------------------------------------------------------------
#   make airflow-standalone   Airflow (scheduler, DAG processor, API server, triggerer) on
#                             http://localhost:8080 with this repo's dags/, everything in
#                             .airflow/; without NEWSMON_CONFIG it serves the seed site from
#                             127.0.0.1 and uses .airflow/demo/newsmon.yaml
#   make airflow-test         the Airflow tests (tests/airflow), scheduler test included

AIRFLOW_DIR     := $(CURDIR)/.airflow
DEMO_CONFIG     := $(AIRFLOW_DIR)/demo/newsmon.yaml
# PATH: `airflow standalone` starts its components as `airflow ...` subprocesses.
AIRFLOW_ENV     := PATH="$(abspath $(BIN)):$$PATH" AIRFLOW_HOME=$(AIRFLOW_DIR) \
                   AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
                   AIRFLOW__CORE__LOAD_EXAMPLES=False

# The seed site on the port the demo config names (written on first use, then
# reused, so article URLs and ids stay the same from one start to the next).
SERVE_SEEDS = $(BIN)/python -c 'import sys, time; from pathlib import Path; \
from pipeline.demo import SeedServer, default_seeds, prepare; \
config, port = prepare(Path(sys.argv[1])); \
server = SeedServer(default_seeds(), port=port).__enter__(); \
print("seed site:", server.feed_url, "config:", config, flush=True); time.sleep(10**9)'

.PHONY: airflow-init airflow-standalone airflow-test

# '.[dev,airflow]' holds '.[dev]': after it, `make demo` installs nothing more.
$(AIRFLOW_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,airflow]'
	touch $@ $(STAMP)

# Idempotent: migrate the metadata DB (SQLite in .airflow/) and create the
# one-slot pool every DuckDB task queues for.
airflow-init: $(AIRFLOW_STAMP)
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate
	$(AIRFLOW_ENV) $(BIN)/airflow pools set newsmon_duckdb 1 "DuckDB file: one process at a time"

airflow-standalone: airflow-init
	@set -e; \
	if [ -n "$$NEWSMON_CONFIG" ]; then \
	  config="$$NEWSMON_CONFIG"; \
	else \
	  config=$(DEMO_CONFIG); \
	  $(SERVE_SEEDS) $(AIRFLOW_DIR)/demo & seeds=$$!; \
	  trap 'kill $$seeds 2>/dev/null' EXIT INT TERM; \
	fi; \
	$(AIRFLOW_ENV) NEWSMON_CONFIG="$$config" $(BIN)/airflow standalone

airflow-test: $(AIRFLOW_STAMP)
	$(BIN)/python -m pytest tests/airflow

