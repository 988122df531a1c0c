# Two commands on a fresh Debian machine, as root, from a clean clone:
#   make demo   - the whole product on the embedded demo department and its PACS
#   make test   - the whole test suite (unit, integration with Orthanc, Prefect, SMTP, Chromium)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# the demo needs Chromium only; the tests also run Orthanc, pdftoppm and PostgreSQL
DEMO_DEBS := chromium
DEBS := $(DEMO_DEBS) orthanc poppler-utils postgresql

.PHONY: demo test test-fast install lint typecheck bench system-deps demo-deps clean

# One pip pass each: the product's packages for `make demo`, with the test and lint tools for
# `make test`. pip is upgraded first (pip 23 as Debian 12's venv has it resolved these
# packages in 31-41 s, pip 26 in 18 s); no byte-compilation of every installed module
# (25 s): Python compiles what it imports, once. On a terminal, one line shows pip's last
# line and the time so far, twice a second (pip alone is silent for 15 s while it unpacks);
# its whole output is printed only if it fails. A log gets none of it.
PIP := $(BIN)/python -m pip install --no-compile
define pip_install
	@echo "installing the Python packages of $(1) into $(VENV) (first run only, about a minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -t 1 ]; then \
	  out=$$(mktemp); \
	  ( $(BIN)/python -m pip install --quiet --upgrade pip && $(PIP) -e '$(1)' ) >"$$out" 2>&1 & pid=$$!; t0=$$SECONDS; \
	  while kill -0 $$pid 2>/dev/null; do \
	    printf '\r\033[K  pip, %3d s: %.90s' $$((SECONDS - t0)) "$$(tail -n 1 "$$out")"; sleep 0.5; \
	  done; \
	  wait $$pid; rc=$$?; printf '\r\033[K'; [ $$rc -eq 0 ] || cat "$$out"; rm -f "$$out"; exit $$rc; \
	else $(BIN)/python -m pip install --quiet --upgrade pip && $(PIP) --quiet -e '$(1)'; fi
endef

$(STAMP): pyproject.toml
	$(call pip_install,.)
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml
	$(call pip_install,.[dev])
	touch $(STAMP) $(DEV_STAMP)

# Debian packages the product and its tests use: Chromium (kaleido renders with it),
# Orthanc (a real PACS for the integration tests), poppler-utils (pdftoppm in tests),
# PostgreSQL (the Prefect server's production database, started by the tests).
system-deps demo-deps: PACKAGES = $(if $(filter demo-deps,$@),$(DEMO_DEBS),$(DEBS))
system-deps demo-deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The venv (with the test tools) and the Debian packages only, nothing run (for a real PACS:
# see the README).
install: $(DEV_STAMP) system-deps

# WEEKS=4 for a quicker first look (default: 26 weeks of department).
demo: $(STAMP) demo-deps
	$(BIN)/pyschedvisu demo $(if $(WEEKS),--weeks $(WEEKS))

test: $(DEV_STAMP) system-deps
	$(BIN)/python -m pytest -m "" -p no:cacheprovider

test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(DEV_STAMP) system-deps
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) demo var .pytest_cache .mypy_cache .ruff_cache
