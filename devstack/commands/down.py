"""`devstack down`: stop the running stack as Ctrl+C in its terminal would, and wait
until its `up` process is gone. Run it again meanwhile to kill the services at once."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from devstack.runtime import control

    root = control.repo_root(args.config_file)
    reply = control.request(root, "down")
    pid = reply["pid"]
    print(f"stopping the stack in {root} (devstack up, pid {pid})", flush=True)
    control.wait_for_exit(pid, root)
    print("stopped")
    return 0
