"""The records of a run: name -> `policy.Record`, a persistent ordered map with tallies.

`stackpolicy.step` must stay pure, yet copying every record on each event made a start
of N services cost O(N²) (issue 16, BENCHMARKS.md "The 50-service cost"). A `Records`
is never changed: `set` returns a new one that shares all but one path with the old.
The records sit in a tree of 32-slot tuples in run order (a persistent vector), so a
`set` copies one tuple per level: two levels up to 1,024 services, three up to 32,768.
The names' places are shared by every version and rebuilt only when the run gains or
loses a service, which a reload does, and which costs O(N) as it always did.

It also counts, as it goes, what `step` asks of every record after each event (is any
spawn under way? has every service ended?), so that no question needs a scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from devstack.core.policy import ENDED_FOR_GOOD, Record

_BITS = 5
_WIDTH = 1 << _BITS  # slots of a node
_MASK = _WIDTH - 1

Node = tuple[object, ...]  # records at the bottom level, nodes above


@dataclass(frozen=True)
class Tally:
    """How many records are in each condition `step` asks about after every event."""

    spawning: int = 0  # a spawn is under way: the first spawns are not all done
    waiting: int = 0  # pending, not spawning: something may start now
    present: int = 0  # alive or being spawned: a shutdown is not over
    unended: int = 0  # not ended for good (a held stop is not an end): the run goes on

    @staticmethod
    def of(record: Record) -> tuple[bool, bool, bool, bool]:
        """Which of the four conditions `record` is in."""
        return (
            record.spawning,
            record.pending and not record.spawning,
            record.alive or record.spawning,
            record.state not in ENDED_FOR_GOOD or record.held,
        )

    def moved(self, old: Record, new: Record) -> Tally:
        before, after = Tally.of(old), Tally.of(new)
        if before == after:
            return self
        counts = (self.spawning, self.waiting, self.present, self.unended)
        return Tally(*(c - b + a for c, b, a in zip(counts, before, after, strict=True)))


class Records(Mapping[str, Record]):
    """name -> Record in run order; `set`, `added` and `without` give new versions."""

    __slots__ = ("_places", "_root", "_shift", "tally")

    def __init__(self, items: Iterable[tuple[str, Record]] = ()) -> None:
        pairs = list(items)
        self._places: Mapping[str, int] = {name: i for i, (name, _) in enumerate(pairs)}
        self._root, self._shift = _build([record for _, record in pairs])
        self.tally = Tally(*map(sum, zip(*(Tally.of(r) for _, r in pairs), strict=True)))

    def __getitem__(self, name: str) -> Record:
        index = self._places[name]
        node, shift = self._root, self._shift
        while shift:
            node = node[(index >> shift) & _MASK]  # type: ignore[assignment]
            shift -= _BITS
        return node[index & _MASK]  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._places

    def __iter__(self) -> Iterator[str]:
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)

    def __repr__(self) -> str:
        return f"Records({dict(self)!r})"

    def position(self, name: str) -> int:
        """Its place in run order (the order services joined the run)."""
        return self._places[name]

    def set(self, name: str, record: Record) -> Records:
        """A new version with `name`'s record replaced (`name` must be in the run)."""
        old = self[name]
        if record is old:
            return self
        new = object.__new__(Records)
        new._places, new._shift = self._places, self._shift
        new._root = _assoc(self._root, self._shift, self._places[name], record)
        new.tally = self.tally.moved(old, record)
        return new

    def added(self, name: str, record: Record) -> Records:
        """A new version with `name` joining the run last (O(N): a reload's work)."""
        return Records([*self.items(), (name, record)])

    def without(self, names: Iterable[str]) -> Records:
        """A new version with `names` out of the run (O(N): a reload's work)."""
        gone = set(names)
        return Records((name, record) for name, record in self.items() if name not in gone)


def _build(records: list[Record]) -> tuple[Node, int]:
    """The tree holding `records` in order, and the shift of its top level."""
    level: list[Node] = [tuple(records[i : i + _WIDTH]) for i in range(0, len(records), _WIDTH)]
    shift = 0
    while len(level) > 1:
        level = [tuple(level[i : i + _WIDTH]) for i in range(0, len(level), _WIDTH)]
        shift += _BITS
    return (level[0] if level else ()), shift


def _assoc(node: Node, shift: int, index: int, record: Record) -> Node:
    """`node` with the record at `index` replaced: one new tuple per level."""
    slot = (index >> shift) & _MASK
    value = record if shift == 0 else _assoc(node[slot], shift - _BITS, index, record)  # type: ignore[arg-type]
    return (*node[:slot], value, *node[slot + 1 :])
