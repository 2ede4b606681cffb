# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make run    venv + install, then the proxy on configs/edgeproxy.yaml (no Redis, no key needed)
#   make test   venv + dev extras, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/edgeproxy.yaml

.PHONY: run test lint format typecheck bench savings check-config config-reference clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "edgeproxy needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/edgeproxy serve --config $(CONFIG)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The files derived from the configuration's declaration (tests hold them equal to it).
config-reference: $(VENV)/.installed
	$(BIN)/edgeproxy schema > configs/edgeproxy.schema.json
	$(BIN)/edgeproxy schema --format markdown > docs/configuration.md
	$(BIN)/edgeproxy schema --format helm-values > helm/edgeproxy/values.schema.json

check-config: $(VENV)/.installed
	$(BIN)/edgeproxy check-config $(CONFIG)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

savings: $(VENV)/.installed-dev
	$(BIN)/python -m bench.savings

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
