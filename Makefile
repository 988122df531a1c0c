# Two commands on a fresh Debian machine, as root, from a clean clone:
#   make demo   - the whole product on the embedded demo department and its PACS
#   make test   - the whole test suite (unit, integration with Orthanc, Prefect, SMTP, Chromium)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBS := chromium orthanc poppler-utils postgresql

.PHONY: demo test test-fast install lint typecheck bench system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the product and its tests use: Chromium (kaleido renders with it),
# Orthanc (a real PACS for the integration tests), poppler-utils (pdftoppm in tests),
# PostgreSQL (the Prefect server's production database, started by the tests).
system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The venv and the Debian packages only, nothing run (for a real PACS: see the README).
install: $(STAMP) system-deps

# WEEKS=4 for a quicker first look (default: 26 weeks of department).
demo: $(STAMP) system-deps
	$(BIN)/pyschedvisu demo $(if $(WEEKS),--weeks $(WEEKS))

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "" -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) system-deps
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) demo var .pytest_cache .mypy_cache .ruff_cache
