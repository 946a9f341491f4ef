# p2c-sync developer entry points. Every target sets up what it needs on a fresh machine:
# a Python 3.11 virtualenv in .venv and Azurite (npm, pinned in package.json) in node_modules.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BENCH_SIZE ?= 2000
PYTEST_ARGS ?=

.PHONY: setup test unit integration lint demo bench sandbox clean

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.stamp node_modules/.stamp

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# Integration and e2e tests start Azurite and the sandbox themselves on free loopback ports.
test: setup lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) -m tools.demo

sandbox: setup
	$(PY) -m sandbox serve --port-file .demo/sandbox.json --state-dir .demo/sandbox-state

bench: setup
	$(PY) -m bench --size $(BENCH_SIZE)

clean:
	rm -rf $(VENV) node_modules .demo .pytest_cache .mypy_cache .ruff_cache
