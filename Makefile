# make run   : create .venv, install Courier, serve on 127.0.0.1:8080 (embedded mode, no settings)
# make test  : install what the tests need (Redis, MariaDB, Chromium where missing, the Python client) and run them all
# make bench : the yardstick's rows for Courier in production mode (a few minutes; scripts/bench/loadgen)
# make bench-compare A=<commit> B=<commit> [ROUNDS=3] : both, alternately, and each row's ratio B/A
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint services clean bench bench-compare

$(BIN)/courier: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# The Python client (clients/python) is a package of its own; its tests (tests/clients,
# clients/python/tests) import it from the venv. Editable, so they test the working tree.
$(VENV)/.test-deps: $(BIN)/courier clients/python/pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q -e ./clients/python
	touch $@

install: $(BIN)/courier

run: $(BIN)/courier
	$(BIN)/courier serve

services:
	bash scripts/ensure-services.sh

# The browser tests run in a pytest process of their own: Playwright's sync API
# keeps an event loop running in the main thread, which Tornado's test loops refuse.
# The production e2e tests (and the production suite's tests that take a topology) run on a
# local Redis Cluster as well (tests/e2e/conftest.py, tests/production/support.py; issue 19:
# 220 e2e tests, about 5 min more). COURIER_TEST_CLUSTER=0 make test leaves those runs out;
# the cluster's integration and contract tests run either way.
COURIER_TEST_CLUSTER ?= 1
export COURIER_TEST_CLUSTER

test: $(VENV)/.test-deps services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q --ignore=tests/browser
	$(BIN)/pytest -q tests/browser

# production mode, loopback only, the repository's own load generator (docs/perf-notes.md: how to measure)
bench: $(BIN)/courier services
	bash scripts/bench/make-bench.sh

bench-compare: $(BIN)/courier services
	A=$(A) B=$(B) ROUNDS=$(or $(ROUNDS),3) PYTHON=$(PYTHON) bash scripts/bench/bench-compare.sh

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info
