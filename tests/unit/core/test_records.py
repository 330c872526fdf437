"""`Records` against a dict: the same records in the same order after any changes, the
old versions untouched, and the tallies equal to counting every record afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.core.policy import Record, State
from devstack.core.records import Records, Tally

RECORDS = st.builds(
    Record,
    state=st.sampled_from(State),
    alive=st.booleans(),
    pending=st.booleans(),
    spawning=st.booleans(),
    held=st.booleans(),
)


def counted(records: dict[str, Record]) -> Tally:
    return Tally(*(sum(column) for column in zip(*map(Tally.of, records.values()), strict=True)))


def agrees(records: Records, model: dict[str, Record]) -> None:
    assert list(records.items()) == list(model.items())
    assert records.tally == (counted(model) if model else Tally())
    assert [records.position(name) for name in records] == list(range(len(model)))


# Sizes across the tree's levels: one leaf, two levels (up to 1,024), three.
@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, 31, 32, 33, 1024, 1025, 1100]),
    changes=st.lists(st.tuples(st.integers(0, 10_000), RECORDS), max_size=30),
    data=st.data(),
)
def test_records_are_a_persistent_ordered_map(
    size: int, changes: list[tuple[int, Record]], data: st.DataObject
) -> None:
    model = {f"s{i}": Record() for i in range(size)}
    records = Records(model.items())
    agrees(records, model)
    for index, record in changes:
        if not model:
            break
        name = list(model)[index % len(model)]
        before, before_model = records, dict(model)
        records, model[name] = records.set(name, record), record
        agrees(records, model)
        agrees(before, before_model)  # the old version is as it was
    added = Records(model.items()).added("new", Record(pending=True))
    agrees(added, {**model, "new": Record(pending=True)})
    gone = data.draw(st.lists(st.sampled_from(sorted(model)), unique=True)) if model else []
    agrees(records.without(gone), {n: r for n, r in model.items() if n not in gone})
