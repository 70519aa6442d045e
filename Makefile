# The README's commands. Setup is idempotent: it reinstalls only when pyproject.toml or
# constraints.txt changed (the stamp file records the last successful install).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HF_STAMP := $(VENV)/.installed-hf
CONFIG ?= configs/demo.toml
WORK   ?= runs/demo

.PHONY: setup setup-hf demo test lint bench ui serve ui-check clean

setup: $(STAMP)

# The `hf` extra (transformers, lm-eval, gguf): what the open-model tests need, not the demo.
setup-hf: $(HF_STAMP)

$(STAMP): pyproject.toml constraints.txt
	@infra/check_prereqs.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

$(HF_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,hf]'
	@touch $(HF_STAMP)

demo: setup
	$(BIN)/lmforge run --config $(CONFIG)

test: setup-hf
	@infra/install_test_tools.sh
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

ui: setup
	@echo "MLflow UI on http://127.0.0.1:5000, Prefect UI on http://127.0.0.1:4200 (Ctrl-C stops both)"
	@trap 'kill 0' INT TERM; \
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(WORK))/mlflow.db --host 127.0.0.1 --port 5000 & \
	PREFECT_HOME=$(abspath $(WORK))/prefect $(BIN)/prefect server start --host 127.0.0.1 --port 4200 & \
	wait

# The scheduled deployments (flows/deployments.py) on a running Prefect server, and a process
# worker that runs them: PREFECT_API_URL=http://127.0.0.1:4200/api make serve [TZ_NAME=Europe/Berlin]
TZ_NAME ?= UTC
serve: setup
	@test -n "$$PREFECT_API_URL" || { echo "make serve: set PREFECT_API_URL to a running Prefect server's API, e.g. http://127.0.0.1:4200/api (make ui starts one)" >&2; exit 2; }
	$(BIN)/python -m flows.deployments --timezone $(TZ_NAME) --config $(CONFIG)
	$(BIN)/prefect worker start --pool lmforge-process --type process

# Headless Chromium opens the Prefect UI (flow run, artifacts) and the MLflow UI (registered
# model) of a fresh small run; screenshots go to runs/ui-check/. Not part of `make test`.
ui-check: setup
	@infra/install_chromium.sh
	$(BIN)/python infra/ui_check.py --work runs/ui-check

clean:
	rm -rf runs
