"""`devstack ui`: a full-screen view of a running stack (issue 17), built on Textual.

`stack.py` is the one way in to the running stack (the control socket), `usage.py`
reads CPU and memory with psutil, `view.py` is the pure part (rows, bounded log
buffers, search), `app.py` draws it all. Nothing here is imported unless the UI is
asked for: `devstack up` pays nothing for it.
"""
