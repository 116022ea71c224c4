# Every target installs what it needs into .venv first, so a fresh machine with only
# Python 3.11+ can run them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest clean soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# The long simulation soak (not part of `make test`): 10,000 seeds of the shipped
# operations under injected faults and crashes; exits non-zero on any violation.
soak: $(STAMP)
	$(BIN)/python -m core.sim.soak --seeds 10000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The service: creates the sample database under data/ on first run (a few seconds), then
# serves it on http://127.0.0.1:8000 (PORT=... to change; docs at /docs).
PORT ?= 8000
.PHONY: demo
demo: $(STAMP)
	$(BIN)/python -m examples.service --port $(PORT)

# PNGs of the browsing pages under docs/screenshots/ (not part of `make test`): starts the
# demo on a fresh sample and drives the system's Chromium (apt-get install chromium).
.PHONY: screenshots
screenshots: $(STAMP)
	$(BIN)/python -m examples.service.web.screenshots
