"""Each landed table's incremental cursor, kept in the warehouse (`ingest.cursors`).

The cursor is the platform's, not dlt's: a publish moves it in the same transaction that
publishes the rows, only forward, and only over rows that are not from the future. So a batch
that was never audited is read again, and a future-dated row cannot make real rows be skipped.
`mlops source cursor` shows and rewinds it (a rewind re-reads; the publish skips what is
already in `raw` at the same version).

A read starts at the cursor (minus the table's lookback), not after it, so rows already
published are read again: `published_in_window` names them, and the landing leaves out those
`raw` holds at the same version (ingestion/sources.py), as the publish would have found them
unchanged.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops_platform.warehouse.base import Transaction, WarehouseStore, quote

STATE_SCHEMA = "ingest"
#: Most published rows `published_in_window` names for one table (a key and a version each):
#: a window holding more (e.g. a table written in one instant) is landed whole, and the
#: publish recognises its rows as unchanged.
WINDOW_ROWS = 100_000
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


def published_in_window(
    warehouse: WarehouseStore,
    tables: dict[str, tuple[list[str], list[str], str, dt.timedelta]],
    cursors: dict[str, dt.datetime | None],
) -> dict[str, pd.DataFrame]:
    """The key and compared columns (version first) of every row in `raw` that the next read
    of each table sees again.

    `tables` maps a table to (key, compared columns, cursor column, lookback). A read takes the
    rows at or after the cursor minus the lookback (a row written later in the instant of the
    cursor, or whose version moved back within the lookback, must not be missed), so each run
    reads the window's published rows again: for a table whose rows share one instant (a
    reference table) that is every row, every day. A table without a cursor, a version or a
    published table, or with more than `WINDOW_ROWS` rows in its window, is left out."""
    found = {}
    for table, (key, compared, cursor, lookback) in tables.items():
        since = cursors.get(table)
        if since is None or not compared:
            continue
        types = warehouse.column_types("raw", table)
        if any(c not in types for c in [*key, *compared, cursor]):
            continue
        if "WITH TIME ZONE" in types[cursor].upper():
            since = since.replace(tzinfo=dt.UTC)  # (the cursor is naive UTC)
        names = ", ".join(quote(c) for c in dict.fromkeys([*key, *compared]))
        rows = warehouse.query(
            f"SELECT {names} FROM raw.{quote(table)} WHERE {quote(cursor)} >= :since "
            f"LIMIT {WINDOW_ROWS + 1}",
            {"since": since - lookback},
        )
        if len(rows) <= WINDOW_ROWS:
            found[table] = rows
    return found


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
