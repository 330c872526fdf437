# Two entry points for a fresh clone with only Python 3.11+, git and make:
#   make dev   set up .venv and run the example stack with `devstack up`
#   make test  set up .venv and run the linters (ruff, mypy) and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# systemd-analyze checks `devstack export systemd`; Debian's systemd package has it.
	command -v systemd-analyze >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends systemd >/dev/null; }
	touch $(STAMP)

dev: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/devstack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Then the tests of stopping, orphans, SIGKILL of devstack, watch and the control socket
# again on the code paths macOS takes (DEVSTACK_PORTABLE=1, issue 15); on a Mac the
# first pass ran those already.
test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n 2 -q
	[ "$$(uname)" != Linux ] || PATH="$(CURDIR)/$(BIN):$$PATH" DEVSTACK_PORTABLE=1 \
		$(BIN)/python -m pytest -n 2 -q -m portable tests/integration

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .devstack var
