"""Measurements, their medians, devstack/peer ratios, targets, and the table.

A row is one (scenario, metric); a cell is one tool's median over the repetitions.
Peer cells carry the devstack/peer ratio: below 1 means devstack is lower (better,
for times, CPU and memory; for MB/s higher is better and the ratio reads the other
way). A row may carry a target from issue 7, checked against the medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Check = Callable[[Mapping[str, float]], bool]


@dataclass
class Row:
    scenario: str
    metric: str
    fmt: str = "{:.3f}"
    values: dict[str, list[float]] = field(default_factory=dict)
    target: str = ""
    check: Check | None = None
    ratios: bool = True  # counts (lines lost, processes left) have no useful ratio
    notes: dict[str, str] = field(default_factory=dict)  # tool -> why its figure is odd

    def medians(self) -> dict[str, float]:
        return {tool: statistics.median(values) for tool, values in self.values.items() if values}


class Results:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    def row(self, scenario: str, metric: str, **options) -> Row:  # type: ignore[no-untyped-def]
        key = (scenario, metric)
        if key not in self.rows:
            self.rows[key] = Row(scenario, metric, **options)
        return self.rows[key]

    def add(self, scenario: str, metric: str, tool: str, value: float, **options) -> None:  # type: ignore[no-untyped-def]
        self.row(scenario, metric, **options).values.setdefault(tool, []).append(value)

    def note(self, scenario: str, metric: str, tool: str, text: str) -> None:
        self.row(scenario, metric).notes[tool] = text

    def tools(self) -> list[str]:
        seen: list[str] = ["devstack"]
        for row in self.rows.values():
            seen += [tool for tool in row.values if tool not in seen]
        return seen

    def table(self) -> list[list[str]]:
        tools = self.tools()
        header = ["scenario", "metric", *tools, "target", ""]
        lines = [header]
        for row in self.rows.values():
            medians = row.medians()
            cells = [row.scenario, row.metric]
            for tool in tools:
                cells.append(_cell(row, tool, medians))
            verdict = ""
            if row.check is not None and "devstack" in medians:
                verdict = "met" if row.check(medians) else "MISSED"
            cells += [row.target, verdict]
            lines.append(cells)
        return lines

    def notes(self) -> list[str]:
        return [
            f"{row.scenario} / {row.metric} / {tool}: {text}"
            for row in self.rows.values()
            for tool, text in row.notes.items()
        ]


def _cell(row: Row, tool: str, medians: Mapping[str, float]) -> str:
    if tool not in medians:
        return ""
    text = row.fmt.format(medians[tool])
    if tool in row.notes:
        text += "*"
    devstack = medians.get("devstack")
    if tool != "devstack" and row.ratios and devstack is not None and medians[tool] > 0:
        text += f" (×{devstack / medians[tool]:.2f})"
    return text


def render(table: Sequence[Sequence[str]], *, markdown: bool) -> str:
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = []
    for number, line in enumerate(table):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        out.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells).rstrip())
        if number == 0:
            rule = ["-" * width for width in widths]
            out.append(("| " + " | ".join(rule) + " |") if markdown else "  ".join(rule))
    return "\n".join(out)


def below(peers: Sequence[str], *, strict: bool = True) -> Check:
    """devstack's median is below (or, not strict, at most) each listed peer's present."""

    def check(medians: Mapping[str, float]) -> bool:
        mine = medians["devstack"]
        return all(
            mine < medians[peer] if strict else mine <= medians[peer]
            for peer in peers
            if peer in medians
        )

    return check


def above(peers: Sequence[str]) -> Check:
    def check(medians: Mapping[str, float]) -> bool:
        return all(medians["devstack"] > medians[peer] for peer in peers if peer in medians)

    return check


def at_most(limit: float) -> Check:
    return lambda medians: medians["devstack"] <= limit
