# Two entry points for a fresh clone with only Python 3.11+, git and make:
#   make dev   set up .venv and run the example stack with `devstack up`
#   make test  set up .venv and run the linters (ruff, mypy) and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make dev` installs devstack alone (quietly); the test tools come with
# the first `make test`, which also has devstack installed.
DEV_STAMP := $(VENV)/.installed-dev
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip

$(DEV_STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install -qq -e .
	touch $(DEV_STAMP)

$(STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# systemd-analyze checks `devstack export systemd`; Debian's systemd package has it.
	command -v systemd-analyze >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends systemd >/dev/null; }
	touch $(STAMP) $(DEV_STAMP)

dev: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/devstack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .devstack var
