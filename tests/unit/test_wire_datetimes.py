"""``calls._wire`` writes UTC datetimes itself: the body the SDK sends must be the
one it would have written from the datetimes (it is checked against the SDK's own
serializer, a private function: if the SDK renames it this test fails loudly)."""

from __future__ import annotations

import datetime as dt

from azure.data.tables import EdmType
from azure.data.tables._serialize import _add_entity_properties
from hypothesis import given
from hypothesis import strategies as st

from tablesessions._record.calls import _wire, call_for
from tablesessions._record.effects import (
    InsertEntity,
    Transaction,
    TxOp,
    UpdateEntity,
    UpsertEntity,
)

utc_datetimes = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31),
                             timezones=st.just(dt.timezone.utc))


@given(st.lists(utc_datetimes, min_size=1, max_size=4))
def test_the_body_is_the_one_the_sdk_writes_from_datetimes(moments: list[dt.datetime]) -> None:
    entity = {"PartitionKey": "p", "RowKey": "r", "Size": 3, "D0": b"abc",
              **{f"T{i}": m for i, m in enumerate(moments)}}
    assert _add_entity_properties(_wire(entity)) == _add_entity_properties(dict(entity))


def test_only_plain_utc_datetimes_are_preformatted_and_the_source_is_untouched() -> None:
    now = dt.datetime(2026, 12, 3, 10, 0, 0, 0, tzinfo=dt.timezone.utc)
    plus_one = dt.datetime(2026, 12, 3, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    entity = {"PartitionKey": "p", "RowKey": "r", "At": now, "Other": plus_one, "N": 1}
    wired = _wire(entity)
    assert wired["At"] == ("2026-12-03T10:00:00.000000Z", EdmType.DATETIME)
    assert wired["Other"] is plus_one and wired["N"] == 1  # left to the SDK
    assert entity["At"] is now  # a copy: the caller's entity keeps its datetimes
    assert _add_entity_properties(wired)["Other"] == "2026-12-03T10:00:00.000000Z"


def test_every_entity_write_goes_through_it() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    entity = {"PartitionKey": "p", "RowKey": "r", "ExpiresAt": now}
    for effect in (InsertEntity(entity), UpdateEntity(entity, "W/x", replace=True),
                   UpsertEntity(entity)):
        call = call_for(effect)
        assert call is not None
        assert call.args[0]["ExpiresAt"][1] is EdmType.DATETIME
    tx = call_for(Transaction((TxOp("upsert", entity),)))
    assert tx is not None and tx.args[0][0][1]["ExpiresAt"][1] is EdmType.DATETIME
