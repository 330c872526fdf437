"""The Textual app of `devstack ui`: the service table over the selected log pane.

Everything it knows of the stack comes from a `StackClient` (two streams: statuses
and output; one request per command), so any number of UIs can watch one stack and
quitting one stops nothing. What it shows is computed by view.py; this module only
wires widgets, keys and streams.

When the `up` it watches ends (stopped, or killed), the UI says the stack is down,
shows no service as running, and waits for the next `up` of the repo: it then
follows that one, its services and its logs, as if it had just opened (`up --ui`'s
UI ends with its stack instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Log, Static

from devstack.core.errors import DevstackError
from devstack.ui import view
from devstack.ui.envpane import EnvScreen
from devstack.ui.stack import RECONNECT_PAUSE, LogBatch, ServiceRow
from devstack.ui.usage import Usage, UsageSampler

ALL = "(all services)"
USAGE_INTERVAL = 1.0  # seconds between CPU/memory samples and uptime updates
WRITE_INTERVAL = 1 / 30  # seconds new lines may wait to be drawn together
OUTPUT_DRAIN = 1.0  # seconds the output stream gets to end after the statuses did
TYPED_BACKLOG = 256  # keys typed into a service not yet sent: a bound, never reached by hand


class Stack(Protocol):
    """What the app needs of the running stack (StackClient; a fixed one in tests)."""

    root: Path
    on_silence: Callable[[DevstackError | None], None] | None

    def statuses(self) -> AsyncGenerator[list[ServiceRow], None]: ...
    def output(self, tail: int) -> AsyncIterator[LogBatch]: ...
    async def restart(self, name: str) -> None: ...
    async def stop(self, name: str) -> None: ...
    async def start(self, name: str) -> None: ...
    async def type_into(self, name: str, text: str) -> None: ...
    async def wait_for_up(self) -> None: ...


# Keys a tty service gets when typed into, for those with no character of their own.
TYPED_KEYS = {"enter": "\r", "tab": "\t", "backspace": "\x7f", "up": "\x1b[A", "down": "\x1b[B"}
TYPED_KEYS |= {"right": "\x1b[C", "left": "\x1b[D", "ctrl+d": "\x04", "ctrl+c": "\x03"}

KEYS = (
    ("↑ ↓ / j k", "choose a service (its log shows below)"),
    ("a", "the log of all services, prefixed / of the chosen one"),
    ("r / x / s", "restart / stop / start the chosen service"),
    ("/", "show only log lines with this text (smart case); Esc clears"),
    ("f", "follow new lines, or pause to read (new lines still arrive)"),
    ("tab", "move between the table and the log (PgUp/PgDn scroll it)"),
    ("e", "the chosen service's env, and each variable's story"),
    ("i", "type into a `tty: true` service; Esc stops typing"),
    ("drag, ^C", "select log text, copy it (plain text, no colour codes)"),
    ("?", "this list"),
    ("q", "quit the UI (the stack keeps running)"),
)


class ServiceLog(Log):
    """The log pane; while `typing_into` names a service, keys go to that service."""

    typing_into: str | None = None

    def on_key(self, event: events.Key) -> None:
        if self.typing_into is None:
            return
        event.stop()
        event.prevent_default()
        if event.key == "escape":
            self.app.action_stop_typing()  # type: ignore[attr-defined]
            return
        text = TYPED_KEYS.get(event.key) or event.character
        if text:
            self.app.type_key(self.typing_into, text)  # type: ignore[attr-defined]


def _raise_in(follower: asyncio.Task[Any] | None) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback for a helper task: if it failed, cancel `follower`, which then
    raises the helper's error where it awaits the helper (a bug shows at once, as a
    worker's would, not once the stack ends)."""

    def done(task: asyncio.Task[Any]) -> None:
        if follower is not None and not task.cancelled() and task.exception() is not None:
            follower.cancel()

    return done


class HelpScreen(ModalScreen[None]):
    """`?`: every key, from the app's own bindings (never out of step with them)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; max-width: 76; border: round $accent; padding: 0 1;
                          background: $surface; }
    """

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        width = max(len(key) for key, _ in self._keys)
        text = Text("devstack ui keys\n\n", style="bold")
        for key, description in self._keys:
            text.append(f"{key:<{width}}  ", style="bold")
            text.append(description + "\n")
        text.append("\nEsc or ? closes this; quitting the UI stops nothing.", style="dim")
        yield Static(text)


class DevstackApp(App[int]):
    """The service table, the log pane of the selected service (or all), and keys."""

    TITLE = "devstack"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #services { height: auto; max-height: 45%; overflow-x: hidden; }
    #pane-title { height: 1; background: $boost; padding: 0 1; }
    #log { height: 1fr; }
    #search { dock: bottom; display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "keys"),
        Binding("r", "restart", "restart"),
        Binding("x", "stop", "stop"),
        Binding("s", "start", "start"),
        Binding("a", "toggle_all", "all/one", show=False),
        Binding("slash", "search", "search"),
        Binding("f", "toggle_follow", "follow", show=False),
        Binding("e", "env", "env"),
        Binding("i", "type", "type", show=False),
        Binding("escape", "clear_search", "clear search", show=False),
        Binding("tab", "focus_next", "table/log", show=False),
        Binding("j", "cursor(1)", "down", show=False),
        Binding("k", "cursor(-1)", "up", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        stack: Stack,
        *,
        config_file: Path | None = None,
        tty_services: Iterable[str] = (),
        read_tty_services: Callable[[], set[str]] | None = None,
        quit_with_stack: bool = False,
        clock: Callable[[], float] = time.time,
        sample_usage: Callable[[list[int]], dict[int, Usage]] | None = None,
        max_lines: int = view.MAX_LINES,
    ) -> None:
        super().__init__()
        self.stack = stack
        self.config_file = config_file
        self.tty_services = set(tty_services)
        # devstack.yaml may have changed by the next `up`: read afresh then (a thread).
        self.read_tty_services = read_tty_services
        self.quit_with_stack = quit_with_stack
        self.clock = clock
        self.sample_usage = sample_usage or UsageSampler().sample
        self.book = view.LogBook(max_lines)
        self.rows: dict[str, ServiceRow] = {}
        self.usage: dict[int, Usage] = {}
        self.selected: str | None = None  # the chosen service; None before the first statuses
        self.show_all = False
        self.query_text = ""
        self.stack_ended = False
        self.not_answering = False  # the `up` has been silent too long (Ctrl+Z?)
        # Rendered lines not yet in the pane; at most max_lines (older ones would scroll
        # out of the pane at once anyway).
        self._unwritten: deque[str] = deque(maxlen=max_lines)
        self._flush_timer: Timer | None = None
        self._typed: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=TYPED_BACKLOG)

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="services", cursor_type="row", zebra_stripes=False)
        yield table
        yield Static(id="pane-title")
        yield ServiceLog(id="log", max_lines=self.book.max_lines)
        yield Input(id="search", placeholder="show lines containing… (Enter; Esc clears)")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#services", DataTable)
        self._set_columns(table, [])
        table.focus()
        self.sub_title = str(self.stack.root)
        self.stack.on_silence = self._silence
        self._update_title()
        self.follow_stack()
        self.send_typed_keys()
        self.set_interval(USAGE_INTERVAL, self.refresh_usage)

    @property
    def log_pane(self) -> ServiceLog:
        return self.query_one("#log", ServiceLog)

    # -- the streams -------------------------------------------------------------------

    @work(group="streams")
    async def follow_stack(self) -> None:
        """Follow the running `up`; once it has ended, the next one, for ever."""
        again = False  # the first `up` finds the UI empty: nothing to forget
        try:
            while True:
                answered = await self._follow_run(again)
                if self.quit_with_stack:
                    self.exit(0)
                    return
                if answered:
                    again = True
                    self._stack_down()
                else:
                    # Its socket took the connection, yet no `up` answered: one dying
                    # as the UI looked (a socket outlives its process by moments).
                    await asyncio.sleep(RECONNECT_PAUSE[0])
                await self.stack.wait_for_up()
        except NoMatches:
            return  # the app is closing: its widgets are gone

    async def _follow_run(self, again: bool) -> bool:
        """The statuses and output of one `up`, until it ends; False if no `up` answered.

        The UI forgets the run before (`_new_run`) only once the next has answered."""
        async with contextlib.aclosing(self.stack.statuses()) as statuses:
            try:
                first = await anext(statuses)
            except (DevstackError, StopAsyncIteration) as error:
                self._lost(error)
                if not self.stack_ended:
                    self.stack_ended = True
                    self._update_title()
                return False
            if again:
                await self._new_run()
            self.show_rows(first)
            output = asyncio.create_task(self._follow_output())
            output.add_done_callback(_raise_in(asyncio.current_task()))
            try:
                try:
                    async for rows in statuses:
                        self.show_rows(rows)
                except DevstackError as error:
                    self._lost(error)
                self.stack_ended = True
                # The last lines the `up` sent may still be on their way: its end closes
                # both streams at once, so they come soon; bounded all the same.
                await asyncio.wait([output], timeout=OUTPUT_DRAIN)
            finally:
                output.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await output
        return True

    def _silence(self, error: DevstackError | None) -> None:
        """The `up` has not answered for a while (stopped with Ctrl+Z, or stuck): said,
        and in the title until it answers again; what it shows is kept meanwhile."""
        self.not_answering = error is not None
        if error is not None:
            self.notify(error.render(), severity="warning", timeout=15)
        else:
            self.notify("devstack up answers again")
        self._update_title()

    def _lost(self, error: Exception) -> None:
        """Say why the stream of statuses ended, unless it is that no `up` runs."""
        if isinstance(error, DevstackError) and error.problems[0].code != "not-running":
            self.notify(error.render(), severity="error", timeout=10)

    async def _follow_output(self) -> None:
        try:
            async for batch in self.stack.output(tail=self.book.max_lines):
                self.add_lines(batch)
        except DevstackError as error:
            if not self.stack_ended:  # else the status stream has said it
                self.notify(f"the log stream stopped: {error.render()}", severity="error")

    def _stack_down(self) -> None:
        """No `up` runs: no service is shown as running, and the title says so."""
        self.action_stop_typing()
        self.not_answering = False
        self.show_rows(view.ended(list(self.rows.values())))
        self.notify("devstack up has ended; the UI follows the next one (q quits)")

    async def _new_run(self) -> None:
        """The next `up` has answered: begin again as if the UI had just opened on it
        (its log files' tails hold the lines of the runs before, with separators)."""
        if self.read_tty_services is not None:
            self.tty_services = await asyncio.to_thread(self.read_tty_services)
        self.stack_ended = False
        self.book.clear()
        self.rows = {}  # its statuses draw the table anew, without "pid ended" lines
        self.redraw_log()
        self.notify("devstack up is running again")

    @work(group="typing")
    async def send_typed_keys(self) -> None:
        # One sender, in order: keys typed fast must reach the service as typed.
        while True:
            name, text = await self._typed.get()
            try:
                await self.stack.type_into(name, text)
            except DevstackError as error:
                self.notify(error.render(), severity="error")
                self.action_stop_typing()

    def type_key(self, name: str, text: str) -> None:
        try:
            self._typed.put_nowait((name, text))
        except asyncio.QueueFull:
            self.notify(
                f"{name} is not taking keys this fast; {text!r} was dropped", severity="error"
            )

    async def refresh_usage(self) -> None:
        pids = [row.pid for row in self.rows.values() if row.pid]
        self.usage = await asyncio.to_thread(self.sample_usage, pids)
        with contextlib.suppress(NoMatches):  # the app closed meanwhile
            self.show_rows(list(self.rows.values()))

    # -- the service table -------------------------------------------------------------

    def show_rows(self, rows: list[ServiceRow]) -> None:
        table = self.query_one("#services", DataTable)
        names = [row.name for row in rows]
        now = self.clock()
        if names != list(self.rows):
            chosen = self.selected
            self._set_columns(table, names)
            for row in rows:
                table.add_row(*self._cells(row, now), key=row.name)
            if chosen in names:
                table.move_cursor(row=names.index(chosen))
        else:
            for row in rows:
                for column, cell in zip(list(table.columns), self._cells(row, now), strict=True):
                    table.update_cell(row.name, column, cell)
        for row in rows:
            before = self.rows.get(row.name)
            if before is not None and (said := view.lifecycle_lines(before, row)):
                self.add_lines(LogBatch(row.name, said, from_file=False))
        self.rows = {row.name: row for row in rows}
        if self.selected is None and rows and not self.show_all:
            self.select(rows[table.cursor_row if table.cursor_row >= 0 else 0].name)
        self._update_title()

    @staticmethod
    def _set_columns(table: DataTable[Text], names: list[str]) -> None:
        table.clear(columns=True)
        for label, width in view.columns(names):
            table.add_column(label, width=width, key=label)

    def _cells(self, row: ServiceRow, now: float) -> tuple[Text, ...]:
        usage = self.usage.get(row.pid) if row.pid else None
        return view.row_cells(row, usage, now)

    @on(DataTable.RowHighlighted, "#services")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.select(event.row_key.value)

    def select(self, name: str) -> None:
        if name == self.selected and not self.show_all:
            return
        self.selected = name
        self.show_all = False
        self.action_stop_typing()
        self.redraw_log()

    # -- the log pane ------------------------------------------------------------------

    def shown_service(self) -> str | None:
        return None if self.show_all else self.selected

    def add_lines(self, batch: LogBatch) -> None:
        if not batch.name:  # about every service: lines that were skipped
            added = [self.book.note(text) for text in batch.lines]
        else:
            added = self.book.add(batch.name, batch.lines, from_file=batch.from_file)
            shown = self.shown_service()
            if shown is not None and shown != batch.name:
                return
        lines = view.filtered(added, self.query_text)
        if lines:
            width = self._prefix_width()
            self._unwritten.extend(view.render_line(line, width) for line in lines)
            if self._flush_timer is None:
                self._flush_timer = self.set_timer(WRITE_INTERVAL, self._write_pending)

    def _write_pending(self) -> None:
        """Lines that arrived since the last write, in one write: Log.write_lines costs
        a worker per call, and a chatty service sends hundreds of batches a second."""
        self._flush_timer = None
        if self._unwritten:
            with contextlib.suppress(NoMatches):  # the app is closing
                self.log_pane.write_lines(self._unwritten)
                if self.query_text:
                    self._update_title()
            self._unwritten.clear()

    def redraw_log(self) -> None:
        log = self.log_pane
        log.clear()
        self._unwritten.clear()  # the book has them: they are drawn below
        lines = view.filtered(self.book.lines(self.shown_service()), self.query_text)
        width = self._prefix_width()
        log.write_lines(view.render_line(line, width) for line in lines)
        self._update_title()

    def _prefix_width(self) -> int | None:
        if not self.show_all:
            return None
        return max((len(name) for name in self.rows), default=0)

    def _update_title(self) -> None:
        log = self.log_pane
        row = self.rows.get(self.selected or "")
        if self.show_all or row is None:
            parts = [ALL if self.show_all else "no service yet"]
        else:
            parts = [view.describe(row)]
        if self.query_text:
            count = log.line_count  # the pane holds exactly the matching lines
            parts.append(f"/{self.query_text}: {count} line{'s' if count != 1 else ''}")
        parts.append("following" if log.auto_scroll else "paused (f follows)")
        if log.typing_into:
            parts.append(f"typing into {log.typing_into} (Esc stops)")
        if self.not_answering and not self.stack_ended:
            parts.insert(0, view.NOT_ANSWERING)
        if self.stack_ended:  # first: the line is cut at the screen's edge
            parts.insert(0, "the stack is down" if self.quit_with_stack else view.STACK_DOWN)
        self.query_one("#pane-title", Static).update(Text(" · ".join(parts)))

    # -- actions -----------------------------------------------------------------------

    def _focus(self, widget: Widget) -> None:
        # Now, not later as Widget.focus does: keys already typed must reach `widget`.
        self.screen.set_focus(widget)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(list(KEYS)))

    def action_cursor(self, step: int) -> None:
        table = self.query_one("#services", DataTable)
        table.move_cursor(row=max(table.cursor_row + step, 0))
        self._follow_cursor()

    def _follow_cursor(self) -> None:
        """Select the service under the table's cursor now, not once the highlight
        message arrives: a key pressed right after `j` acts on the new row."""
        table = self.query_one("#services", DataTable)
        if table.row_count and table.cursor_row >= 0:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key is not None:
                self.select(key)

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.action_stop_typing()
        self.redraw_log()

    def action_toggle_follow(self) -> None:
        log = self.log_pane
        log.auto_scroll = not log.auto_scroll
        if log.auto_scroll:
            log.scroll_end(animate=False)
        self._update_title()

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True  # at once: the next key typed must reach it
        search.value = self.query_text
        self._focus(search)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value
        self._close_search()
        self.redraw_log()

    def action_clear_search(self) -> None:
        if self.query_one("#search", Input).display or self.query_text:
            self.query_text = ""
            self._close_search()
            self.redraw_log()

    def _close_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = False
        self._focus(self.query_one("#services", DataTable))

    async def action_restart(self) -> None:
        await self._command("restart", self.stack.restart)

    async def action_stop(self) -> None:
        await self._command("stop", self.stack.stop)

    async def action_start(self) -> None:
        await self._command("start", self.stack.start)

    async def _command(self, verb: str, call: Callable[[str], Any]) -> None:
        if not self.show_all:
            self._follow_cursor()
        name = self.selected
        if name is None or self.show_all:
            self.notify(f"choose a service to {verb} (a shows one again)", severity="warning")
            return
        self.notify(f"{verb}: {name}")
        self.run_worker(self._carry_out(verb, name, call), group="commands")

    async def _carry_out(self, verb: str, name: str, call: Callable[[str], Any]) -> None:
        try:
            await call(name)
        except DevstackError as error:
            self.notify(f"{verb} {name}: {error.render()}", severity="error", timeout=10)

    def action_env(self) -> None:
        if not self.show_all:
            self._follow_cursor()
        if self.selected is None:
            return
        self.push_screen(EnvScreen(self.selected, self.config_file))

    def action_type(self) -> None:
        if not self.show_all:
            self._follow_cursor()
        name = self.selected
        if name is None or self.show_all:
            return
        if name not in self.tty_services:
            self.notify(
                f"{name} reads no input; `tty: true` in devstack.yaml lets you type into it",
                severity="warning",
            )
            return
        log = self.log_pane
        log.typing_into = name
        self._focus(log)
        self._update_title()

    def action_stop_typing(self) -> None:
        log = self.log_pane
        if log.typing_into is not None:
            log.typing_into = None
            self._focus(self.query_one("#services", DataTable))
            self._update_title()
