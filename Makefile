# GRAM serve: the two commands a newcomer needs are `make serve` and `make test`.
# Both create .venv and install requirements.lock exactly (every distribution pinned, with hashes) on
# first use, and again whenever the lock changes. `make lock` re-resolves the lock from the top-level
# pins in requirements.txt / requirements-dev.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
# torch's CPU build lies in this folder on our machines; PyPI's Linux wheel is the CUDA build
FIND_LINKS ?= /opt/wheels
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--find-links $(FIND_LINKS) --no-header --quiet

.PHONY: help venv lock serve test lint format typecheck data bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements-uv.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.lock
	$(UV) pip sync --quiet --python $(PY) --require-hashes --find-links $(FIND_LINKS) requirements.lock
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with exactly the locked dependencies

lock: $(STAMP)  ## re-resolve requirements*.lock and bench/gpu-requirements.txt from requirements*.txt
	$(UV) pip compile $(LOCK_FLAGS) requirements-dev.txt -o requirements.lock
	$(UV) pip compile $(LOCK_FLAGS) --no-emit-package torch requirements.txt -o requirements-runtime.lock
	grep -o '^uv==[^ ]*' requirements-dev.txt | $(UV) pip compile $(LOCK_FLAGS) - -o requirements-uv.lock
	$(PY) bench/gpu_wheels.py --write

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
