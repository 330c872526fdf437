"""devstack: run a whole monorepo's dev stack with one command."""

__version__ = "0.1.0"
