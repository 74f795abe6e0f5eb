"""`rows_without_key` (the deleted-at-the-source check) on PostgreSQL answers as the pandas merge
it replaced: NULLs match NULLs, an empty string is not a NULL, keys come as pandas or Arrow,
and a key the stored type cannot hold is still answered (by the merge)."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest

from mlops_platform.warehouse.base import WarehouseStore

KEY = ["code", "n"]
STORED = pd.DataFrame(
    {
        "code": ["a", "a", "b", "", None, None, "c"],
        "n": pd.array([1, 2, 1, 1, 1, None, 3], dtype="Int64"),
        "payload": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
    }
)

SERVER = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def warehouse(postgres_scratch_schema):
    from mlops_platform.warehouse.resources import PostgresWarehouse

    store = PostgresWarehouse(url=SERVER)
    store.replace_table(postgres_scratch_schema, "t", STORED)
    return store, postgres_scratch_schema


def _gone(frame: pd.DataFrame) -> list[tuple]:
    found = [
        ((None if pd.isna(c) else c), (None if pd.isna(n) else int(n)))
        for c, n in zip(frame["code"], frame["n"], strict=True)
    ]
    return sorted(found, key=repr)


SOURCES = {
    # everything still there
    "all": (STORED[KEY], []),
    # ("a", 2), ("", 1) and (NULL, NULL) deleted; (NULL, 1) kept; a source-only key ignored
    "some": (
        pd.DataFrame({"code": ["a", "b", None, "c", "z"], "n": [1, 1, 1, 3, 9]}),
        sorted([("", 1), ("a", 2), (None, None)], key=repr),
    ),
    # an empty string at the source is not the stored NULL
    "empty_string": (
        pd.DataFrame({"code": ["a", "a", "b", "", "", None, "c"], "n": [1, 2, 1, 1, 1, None, 3]}),
        [(None, 1)],
    ),
    "none": (pd.DataFrame({"code": pd.Series([], dtype=object), "n": []}), None),
}


@pytest.mark.parametrize("as_arrow", [False, True])
@pytest.mark.parametrize("case", list(SOURCES))
def test_postgres_finds_the_rows_the_pandas_merge_finds(warehouse, case, as_arrow):
    store, schema = warehouse
    keys, expected = SOURCES[case]
    keys = keys.astype({"n": "Int64"})
    given = pa.Table.from_pandas(keys, preserve_index=False) if as_arrow else keys
    found = store.rows_without_key(schema, "t", given, KEY)
    by_merge = WarehouseStore.rows_without_key(store, schema, "t", given, KEY)
    assert _gone(found) == _gone(by_merge)
    assert _gone(found) == (expected if expected is not None else _gone(STORED))
    if len(found):  # whole stored rows, as the merge path returns them
        assert list(found.columns) == list(STORED.columns)
        assert sorted(found["payload"]) == sorted(by_merge["payload"])


def test_a_key_the_stored_type_cannot_hold_is_answered_by_the_merge(warehouse):
    store, schema = warehouse
    keys = pd.DataFrame({"code": ["a", "b"], "n": [1.0, 1.5]})  # 1.5: no integer column's
    found = store.rows_without_key(schema, "t", keys, KEY)
    assert _gone(found) == _gone(WarehouseStore.rows_without_key(store, schema, "t", keys, KEY))
    assert ("a", 1) not in _gone(found) and len(found) == len(STORED) - 1


def test_no_table_no_rows(warehouse):
    store, schema = warehouse
    assert store.rows_without_key(schema, "missing", STORED[KEY], KEY).empty
