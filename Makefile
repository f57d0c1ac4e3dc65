# Two commands for a new user: `make run` (set up and run Interlock) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

export INTERLOCK_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/interlock
export INTERLOCK_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: install tools services run test lint unit integration e2e bench clean

install: $(VENV)/.installed

# promtool, for the alert-rule tests: Debian's, unpacked into the venv (see .ci/promtool)
tools: $(BIN)/promtool

$(BIN)/promtool:
	bash .ci/promtool $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

services:
	bash .ci/services

# the examples' user action (order_actions) and the stand-in for their endpoints on 127.0.0.1
run: export PYTHONPATH := examples
run: export INTERLOCK_EXECUTOR_ACTIONS ?= ["order_actions"]
run: export INTERLOCK_EXECUTOR_HTTP_ALLOW ?= ["127.0.0.1"]
run: install services
	$(BIN)/interlock migrate
	$(BIN)/interlock apply examples/
	$(BIN)/python examples/stand_in.py > .stand-in.log 2>&1 & trap "kill $$!" EXIT; \
	$(BIN)/interlock run all

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install tools services lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

integration: install services
	$(BIN)/pytest tests/integration

e2e: install services
	$(BIN)/pytest tests/e2e

bench: install services
	$(BIN)/interlock bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
