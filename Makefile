# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# `make` alone (or `make help`) lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint pytest bench docs gallery clean
.DEFAULT_GOAL := help

help: ## list the targets
	@echo "make <target>   (the first run creates .venv and installs; Python >= 3.11)"
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]+):.*## (.*)/  \1\t\2/' | expand -t 12

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Reinstall only when the dependency declarations change.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[dev,docs]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with the dev and docs extras

demo: $(STAMP) ## train on digits from label bags: exact matching loss vs baselines (~10 s)
	$(PY) -m combgrad demo

lint: $(STAMP) ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

pytest: $(STAMP) ## the test suite on 2 workers
	$(PY) -m pytest -q -n 2 --durations=15

test: lint pytest ## lint, then the test suite (what CI runs, with make docs)

# The reference libraries for the benchmarks (cvxpylayers) are an optional extra.
$(VENV)/.bench-installed: $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[dev,docs,bench]'
	touch $@

bench: $(VENV)/.bench-installed ## benchmarks against reference libraries (python -m benchmarks)
	$(PY) -m benchmarks

docs: $(STAMP) ## build the documentation into site/ (mkdocs --strict)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

gallery: $(STAMP) ## run the gallery tutorials in full and redraw their figures (docs/img/gallery)
	for f in examples/gallery/*.py; do $(PY) $$f || exit 1; done

clean: ## remove .venv, site and caches
	rm -rf $(VENV) site .pytest_cache .ruff_cache
