"""Each landed table's incremental cursor, kept in the warehouse (`ingest.cursors`).

The cursor is the platform's, not dlt's: a publish moves it in the same transaction that
publishes the rows, only forward, and only over rows that are not from the future. So a batch
that was never audited is read again, and a future-dated row cannot make real rows be skipped.
`mlops source cursor` shows and rewinds it (a rewind re-reads; the publish skips what is
already in `raw` at the same version).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops_platform.warehouse.base import Transaction, WarehouseStore

STATE_SCHEMA = "ingest"
CURSORS = "cursors"
BATCHES = "batches"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.{CURSORS} (table_name TEXT, cursor_column TEXT, "
    "value TIMESTAMP, moved_at TIMESTAMP, note TEXT)",
    f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.{BATCHES} (table_name TEXT, load_id TEXT, "
    "landed_rows BIGINT, published BIGINT, unchanged BIGINT, quarantined BIGINT, "
    "dagster_run_id TEXT, published_at TIMESTAMP)",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive(value) -> dt.datetime | None:
    """A timestamp as naive UTC (the form cursors and clocks are compared in)."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def ensure_state(tx: Transaction) -> None:
    for statement in DDL:
        tx.execute(statement)


def read_cursors(warehouse: WarehouseStore) -> dict[str, dt.datetime | None]:
    if not warehouse.table_exists(STATE_SCHEMA, CURSORS):
        return {}
    found = warehouse.query(f"SELECT table_name, value FROM {STATE_SCHEMA}.{CURSORS}")
    return {row.table_name: naive(row.value) for row in found.itertuples()}


def cursor_log(warehouse: WarehouseStore) -> pd.DataFrame:
    if not warehouse.table_exists(STATE_SCHEMA, CURSORS):
        return pd.DataFrame(columns=["table_name", "cursor_column", "value", "moved_at", "note"])
    return warehouse.query(f"SELECT * FROM {STATE_SCHEMA}.{CURSORS} ORDER BY table_name")


def store_cursor(
    tx: Transaction, table: str, column: str, value: dt.datetime | None, note: str
) -> None:
    tx.execute(f"DELETE FROM {STATE_SCHEMA}.{CURSORS} WHERE table_name = :t", {"t": table})
    tx.execute(
        f"INSERT INTO {STATE_SCHEMA}.{CURSORS} VALUES (:t, :c, :v, :m, :n)",
        {"t": table, "c": column, "v": value, "m": utcnow(), "n": note},
    )


def rewind_cursor(
    warehouse: WarehouseStore, table: str, column: str, value: dt.datetime | None
) -> dt.datetime | None:
    """Set a table's cursor (None: read everything again); returns the previous value."""
    previous = read_cursors(warehouse).get(table)
    with warehouse.transaction() as tx:
        ensure_state(tx)
        store_cursor(tx, table, column, value, f"set by hand (was {previous})")
    return previous


def read_cursor_in(tx: Transaction, table: str) -> dt.datetime | None:
    found = tx.query(
        f"SELECT value FROM {STATE_SCHEMA}.{CURSORS} WHERE table_name = :t", {"t": table}
    )
    return naive(found["value"].iloc[0]) if len(found) else None
