# GRAM serve: the two commands a newcomer needs are `make serve` and `make test`.
# Both create .venv and install the pinned dependencies on first use (idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv serve test lint format typecheck data bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with the pinned dependencies

serve: $(STAMP)  ## start the server on the bundled checkpoints (GRAM_* env vars override settings)
	$(PY) -m server

test: lint  ## lint, type-check and run the whole test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff lint + format check, mypy on tasks/ server/ gram_client/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

data: $(STAMP)  ## build the seeded train/test splits under data/
	$(PY) -m tasks.build --out data

bench: $(STAMP)  ## run the CPU benchmarks (results printed and written under bench/results/)
	$(PY) bench/bench_verify.py

clean:  ## remove caches (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis
