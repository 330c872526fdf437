"""The last step of every stop closes asyncio's subprocess transport, and asyncio's
`BaseSubprocessTransport.close` SIGKILLs a main process that is still running.

`ServiceProcess.stop` relies on it for a process that outlived even its SIGKILLs (a
process stuck in the kernel, on a dead NFS mount, is killed once it comes back):
this pins that behaviour of asyncio, which asyncio documents nowhere.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

from devstack.runtime.process import ServiceProcess
from tests.unit.runtime.test_process import FakeOutput

IGNORES_SIGTERM = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("up", flush=True)
    time.sleep(60)
"""


def test_closing_the_transport_sigkills_a_main_process_still_running() -> None:
    async def scenario() -> int:
        output = FakeOutput()
        process = await ServiceProcess.spawn(
            name="svc",
            argv=[sys.executable, "-c", textwrap.dedent(IGNORES_SIGTERM)],
            cwd=Path.cwd(),
            env={},
            tty=False,
            output=output,  # type: ignore[arg-type]
        )
        await output.until(lambda: "up" in output.text())
        await process._close()  # what `stop` does last, here with the process running
        return await asyncio.wait_for(process.wait(), 30)

    assert asyncio.run(scenario()) == -signal.SIGKILL
