"""The guardian: a tiny process that ends a run's services if devstack dies.

devstack keeps the write end of a pipe whose read end only the guardian holds.
However devstack ends (a normal exit, a crash, even SIGKILL, which no handler
sees), the kernel closes that write end and the guardian reads EOF. It then
finds every process whose environment carries the run's `DEVSTACK_RUN_ID`,
sends SIGTERM, waits briefly, SIGKILLs the rest, says what it did, and exits.
After a normal exit there is nothing left to find and it exits at once.

It runs in a session of its own, so Ctrl+C at the terminal does not reach it,
and it imports nothing heavy until it has work to do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

GRACE = 3.0  # seconds between SIGTERM and SIGKILL; devstack is gone, no one else decides

# The write end of the pipe (never written, never closed by hand) and the Popen
# (so it is never collected and reported as "still running").
_held: list[object] = []


def start_guardian(run_id: str, state_dir: Path) -> None:
    """Start the guardian for `run_id`; it outlives this process by a moment only."""
    import subprocess

    read_end, write_end = os.pipe()  # both close-on-exec: services never inherit them
    try:
        guardian: subprocess.Popen[bytes] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.runtime.guardian",
                run_id,
                str(read_end),
                str(state_dir / "guardian.log"),
            ],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # stderr stays: it tells the terminal what it did
            start_new_session=True,
            cwd="/",
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _held.extend((write_end, guardian))


def guard(run_id: str, read_end: int, log: Path) -> int:
    """Wait for devstack to end, then end whatever of its run is still running."""
    import signal

    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(read_end, 4096):
        pass  # devstack never writes; b"" is the end of devstack
    from devstack.runtime.reaper import describe, marked_processes, terminate

    left = marked_processes(run_ids={run_id})
    if not left:
        return 0
    described = describe(left)  # now, while their command lines can still be read
    survivors = terminate(left, GRACE)
    message = f"devstack guardian: devstack is gone; stopped {described}"
    if survivors:
        message += f"; could not stop {describe(survivors)}"
    _report(message, log)
    return 1 if survivors else 0


def _report(message: str, log: Path) -> None:
    import contextlib
    import time

    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)
    with contextlib.suppress(OSError), log.open("a") as file:
        file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
