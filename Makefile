# Two entry points for a fresh clone with only Python 3.11+, git and make:
#   make dev   set up .venv and run the example stack with `devstack up`
#   make test  set up .venv and run the linters (ruff, mypy) and the test suite
#              (it also needs node and npm: the JS tools the tests compare devstack with)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make dev` installs devstack alone (quietly); the test tools come with
# the first `make test`, which also has devstack installed.
DEV_STAMP := $(VENV)/.installed-dev
STAMP := $(VENV)/.installed
# The real JS tools the tests compare devstack with (turbo's differential test, issue 12),
# from the npm registry into .venv/node; node and npm are on every machine here.
NODE_TOOLS := $(VENV)/node
NODE_STAMP := $(NODE_TOOLS)/.installed

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
	# tmux drives the real `devstack ui` in tests/integration/test_ui_tmux.py.
	command -v tmux >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends tmux >/dev/null; }
	command -v tmux >/dev/null || ! command -v brew >/dev/null || brew install tmux >/dev/null
	touch $(STAMP) $(DEV_STAMP)

$(NODE_STAMP): Makefile
	npm install --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error turbo@2 pnpm@10 dotenv-cli@10 bun@1
	npm install --prefix $(NODE_TOOLS)/turbo1 --no-audit --no-fund --loglevel=error turbo@1
	npm install --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error @next/env@16
	touch $(NODE_STAMP)

dev: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/devstack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Python set-up and the JS tools' install do not depend on each other: side by side.
# The tests of stopping, orphans, SIGKILL of devstack, watch and the control socket run
# on Linux twice, the second time on the code paths macOS takes (DEVSTACK_PORTABLE=1,
# issue 15): tests/integration/conftest.py makes them two parameters of one pytest run.
# Most tests wait on real processes rather than compute: 3 workers keep 2 cores busy,
# and pyproject's --dist worksteal keeps them busy to the end.
test:
	@$(MAKE) --no-print-directory -j2 lint $(NODE_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n 3 -q

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .devstack var
