# Every target installs what it needs into .venv first, so a fresh machine with only
# Python 3.11+ can run them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest clean soak compiled test-compiled

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
	rm -rf $(VENV) $(CVENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The compiled build: a wheel whose hot modules mypyc compiled (setup.py lists them),
# installed (not editable) with the development tools into .venv-compiled. The editable
# install in .venv stays plain Python; `core.COMPILED` says which one runs.
CVENV := .venv-compiled
CBIN := $(CVENV)/bin

compiled: $(STAMP)
	rm -rf build dist
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	test -x $(CBIN)/python || $(PYTHON) -m venv $(CVENV)
	$(CBIN)/python -m pip install --quiet --upgrade pip
	$(CBIN)/python -m pip install --quiet --force-reinstall --no-deps dist/ioresult-*.whl
	$(CBIN)/python -m pip install --quiet "$$(ls dist/ioresult-*.whl)[dev]"
	$(CBIN)/python -P -c "import core, sys; sys.exit(0 if core.COMPILED else 'not compiled')"

# The whole suite against the installed compiled build, run from a scratch directory
# holding only links to tests/, examples/ and benchmarks/, so that `core` and `bridge`
# come from the wheel and never from this checkout (tests/test_compiled.py checks it).
test-compiled: compiled
	rm -rf $(CVENV)/run && mkdir -p $(CVENV)/run
	cp pyproject.toml $(CVENV)/run/
	for d in tests examples benchmarks docs; do ln -s "$(CURDIR)/$$d" $(CVENV)/run/$$d; done
	cd $(CVENV)/run && IORESULT_EXPECT_COMPILED=1 $(CURDIR)/$(CBIN)/python -m pytest \
		-p no:cacheprovider --rootdir . -c pyproject.toml tests

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
