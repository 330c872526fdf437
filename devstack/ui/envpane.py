"""The `e` screen of `devstack ui`: a service's environment as `devstack env SVC`
shows it (envreport's rows, secrets masked), and the story of the chosen variable.

It reads devstack.yaml and the env files afresh, as the env command does, in a
thread: a config broken by an edit shows its problems here, and the UI runs on.
`loaded` is set once what was read is on the screen (rows, the first variable's
story, or the problem): the one thing a test (or a caller) waits on, never a pause.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from devstack.core.errors import DevstackError

COLUMNS = ("NAME", "SOURCE", "VALUE")
# A long source ("set by devstack for every service, when `up` prints in colour") is
# cut, so that VALUE starts on an 80-column screen; the story below has it whole.
WIDEST = {"NAME": 40, "SOURCE": 33, "VALUE": 10_000}


class EnvScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,e,q", "app.pop_screen", "back"),
    ]
    DEFAULT_CSS = """
    EnvScreen #env-title { height: 1; background: $boost; padding: 0 1; }
    EnvScreen #variables { height: 1fr; }
    EnvScreen #story { height: auto; max-height: 40%; border-top: solid $accent; padding: 0 1; }
    """

    def __init__(self, service: str, config_file: Path | None) -> None:
        super().__init__()
        self.service = service
        self.config_file = config_file
        self.stories: dict[str, str] = {}
        self.loaded = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield Static(Text(f"env of {self.service} (secrets masked)"), id="env-title")
        table: DataTable[str] = DataTable(id="variables", cursor_type="row")
        yield table
        yield Static(id="story")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#variables", DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            rows, stories = await asyncio.to_thread(env_report, self.service, self.config_file)
        except DevstackError as error:
            self._show_problem(error.render())
        else:
            self._show(rows, stories)
        self.loaded.set()

    def _show(self, rows: list[tuple[str, str, str]], stories: dict[str, str]) -> None:
        self.stories = stories
        table = self.query_one("#variables", DataTable)
        # Text: values and sources are never read as markup.
        cells = [(Text(name), Text(source), Text(value)) for name, value, source in rows]
        # Columns as wide as their widest cell, set here with the rows: a table left to
        # widen its columns itself does so on idle, after a first drawing that its
        # cursor row may keep (seen as a cut `DATA  devsta  postg` row, 1 run in 30).
        table.clear(columns=True)
        for index, label in enumerate(COLUMNS):
            width = max(cell_len(label), *(row[index].cell_len for row in cells))
            table.add_column(label, width=min(width, WIDEST[label]), key=label)
        for (name, _, _), row in zip(rows, cells, strict=True):
            table.add_row(*row, key=name)
        if not rows:
            self._show_problem(f"{self.service} gets no variables")
            return
        # The story of the row under the cursor now, not once the table's highlight
        # message has made its way here: the screen is whole when `loaded` is set.
        self._tell_story(rows[table.cursor_row if table.cursor_row >= 0 else 0][0])

    def _show_problem(self, message: str) -> None:
        self.query_one("#story", Static).update(Text(message))

    @on(DataTable.RowHighlighted, "#variables")
    def _variable_chosen(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name is not None:
            self._tell_story(name)

    def _tell_story(self, name: str) -> None:
        self.query_one("#story", Static).update(Text(self.stories.get(name, "")))


def env_report(
    service: str, config_file: Path | None
) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(name, masked value, source) rows and each variable's story, for `service`."""
    import os

    from devstack.core import envreport
    from devstack.core.config import find_config, load_project
    from devstack.core.envresolve import resolve_project
    from devstack.core.errors import unknown_name_error

    project = load_project(config_file or find_config(Path.cwd()))
    if service not in project.services:
        raise DevstackError([unknown_name_error("service", service, project.services)])
    env = resolve_project(project, dict(os.environ), {})
    shown = envreport.Shown(project)
    rows = envreport.variable_rows(env.services[service], shown)
    stories = {
        name: envreport.variable_story(project, env, service, name, shown) for name, _, _ in rows
    }
    return rows, stories
