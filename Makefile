# convmon — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-unit test-e2e kafka-up kafka-down clean

setup: $(STAMP)  ## venv in .venv with convmon and its test dependencies (idempotent)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)
	@echo "setup done: $(BIN)/convmon"

kafka-up: setup
	$(BIN)/convmon kafka up

kafka-down: setup
	$(BIN)/convmon kafka down

demo: setup kafka-up  ## replay the sample conversations through the live pipeline
	$(BIN)/convmon demo

test: setup kafka-up  ## the whole suite: unit, agent and end-to-end (real broker)
	$(BIN)/python -m pytest -q -rs

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit tests/agent

clean:
	-$(BIN)/convmon kafka down
	rm -rf var build dist *.egg-info
