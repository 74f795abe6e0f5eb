"""Concurrent writers on the PostgreSQL warehouse: what a backfill spread over several Celery
workers does (each partition replaces its own rows of the same, possibly new, table)."""

from __future__ import annotations

import os
import threading

import pandas as pd
import pytest

SERVER = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def schema(postgres_scratch_schema):
    return postgres_scratch_schema


def test_partitions_written_at_once_into_a_new_table_all_land(schema):
    from mlops_platform.warehouse.resources import PostgresWarehouse

    warehouse = PostgresWarehouse(url=SERVER)
    writers = 6
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(day: int) -> None:
        frame = pd.DataFrame({"day": [day] * 100, "score": [day / 10] * 100})
        start.wait()  # all at once: the schema and the table do not exist yet
        try:
            warehouse.replace_rows(schema, "scores", frame, where=f"day = {day}")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(day,)) for day in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    counts = warehouse.query(f'SELECT day, count(*) AS n FROM "{schema}".scores GROUP BY day')
    assert dict(zip(counts["day"], counts["n"], strict=True)) == {d: 100 for d in range(writers)}


def test_a_streamed_read_equals_one_read_even_with_null_only_chunks(schema, monkeypatch):
    """read_table streams in chunks; a chunk where a column is all NULL must not turn the
    column into objects (a feature table's late labels are NULL for its newest days)."""
    from mlops_platform.warehouse import postgres
    from mlops_platform.warehouse.resources import PostgresWarehouse

    warehouse = PostgresWarehouse(url=SERVER)
    frame = pd.DataFrame(
        {
            "day": range(10),
            "label": [None] * 4 + [1.0, 0.0] * 3,
            "at": pd.to_datetime([None] * 4 + ["2013-01-02"] * 6),
            "carrier": [None] * 4 + ["UA"] * 6,
        }
    )
    warehouse.replace_table(schema, "features", frame)
    whole = warehouse.query(f'SELECT * FROM "{schema}".features ORDER BY day')
    monkeypatch.setattr(postgres, "READ_CHUNK_ROWS", 3)
    streamed = warehouse.read_table(schema, "features").sort_values("day").reset_index(drop=True)
    pd.testing.assert_frame_equal(streamed, whole)
    assert streamed["label"].dtype == float and streamed["at"].dtype.kind == "M"


def test_a_date_range_is_read_through_an_index_not_a_scan(schema):
    """Scoring reads and replaces ranges of `event_date` (compared as stored, not cast): on
    PostgreSQL the column gets one index, made once, and the range query uses it."""
    from mlops_platform.warehouse.resources import PostgresWarehouse

    warehouse = PostgresWarehouse(url=SERVER)
    days = pd.date_range("2013-01-01", periods=400, freq="D").repeat(50)
    frame = pd.DataFrame({"event_date": days, "score": 0.5})
    warehouse.replace_rows(schema, "scores", frame, where="1 = 1")
    for _ in range(2):  # idempotent
        warehouse.ensure_index(schema, "scores", "event_date")
    indexes = warehouse.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = :s AND tablename = 'scores'",
        {"s": schema},
    )
    assert list(indexes["indexname"]) == ["scores_event_date_idx"]
    warehouse.execute(f'ANALYZE "{schema}".scores')
    plan = warehouse.query(
        f'EXPLAIN SELECT * FROM "{schema}".scores '
        "WHERE event_date >= DATE '2013-03-01' AND event_date < DATE '2013-03-08'"
    )
    assert "scores_event_date_idx" in " ".join(plan.iloc[:, 0]), plan
