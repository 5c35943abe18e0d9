# Every target sets up .venv from requirements.lock first, so each works on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist); each test file runs whole in one of them, so a file's shared fixtures are built once.
TEST_WORKERS ?= 2

.PHONY: run test test-fast benchmark clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/atb train model BTCUSDT

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

benchmark: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_features.py
	$(BIN)/python tests/benchmarks/bench_models.py

clean:
	rm -rf $(VENV) models mlruns training_output .pytest_cache
