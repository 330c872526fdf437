"""`devstack export`: the resolved plan as the files another engine runs (issue 18).

Every exporter is a pure function of a `Stack` that returns an `Export`: the files
(name, content, mode) and the notes on what the target cannot express, which the
command prints on stderr. Only `commands/export.py` writes anything, as honcho's
exporters return `File` records for its `export` command to write.
"""
