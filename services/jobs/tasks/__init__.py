"""The tasks the worker runs, one module each: `TASK_ID` and `run(payload, ctx)`.

Jobs are enqueued by task id (the API never imports these modules); add a module
here and the worker picks it up on its next start (devstack restarts it on save).
"""
