"""dlt sources for a domain's declared sources (plain dlt, no Dagster): SQL databases read
with `sql_database`, HTTP feeds with `rest_api`, as the domain's declaration describes them.

Every source lands in the warehouse's `landing` dataset by appending (write-audit-publish:
nothing here writes `raw`; the contract audits each landed batch and publishes what passes).
The incremental cursor of each table is the platform's own (`ingestion/cursors.py`), kept in
the warehouse and moved only by a publish, so a batch that was never audited is read again,
and a row from the future cannot move it. Rows at the cursor are re-read (a row written later
in the same instant must not be missed); those `raw` already holds at the same version are
left out of the landing where the whole read is in hand (`_without_published`), and the
publish recognises any others as unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from mlops_platform.domains import Domain
from mlops_platform.domains.schema import RestSource

LANDING_DATASET = "landing"
#: Set on a landed row when the source lacked required columns (comma-separated names).
MISSING_COLUMNS = "_source_missing"
#: Set on a landed row whose cells did not have their column's type ("col='value'; ...").
TYPE_ERRORS = "_type_errors"


AUDIT_COLUMNS = (MISSING_COLUMNS, TYPE_ERRORS)
#: Every landed row's own id (the audit names the rows it publishes by it).
ROW_ID = "_dlt_id"
#: Declared for the feed (sql_database takes column hints only for reflected columns).
AUDIT_HINTS = {
    name: {"data_type": "text", "nullable": True} for name in (MISSING_COLUMNS, TYPE_ERRORS)
}


def sql_source(
    domain: Domain,
    source_name: str,
    credentials: Any,
    cursors: dict[str, Any] | None = None,
    required: dict[str, list[str]] | None = None,
    chunk_size: int = 100_000,
    backend: str = "",
    published: dict[str, Any] | None = None,
) -> Any:
    """A declared SQL source's tables as one dlt source, each table's rows with its cursor
    column >= its cursor (minus the table's declared lookback), but for those `published`
    names (`cursors.published_in_window`: the key, version and clock-checked columns of each
    row `raw` holds in the read's window), which would land unchanged.

    Every table is read straight into Arrow by connectorx (no Python object per row or cell;
    dlt then writes the batches to Parquet as they are). SQLite does not enforce column types:
    when a cell does not have its column's type, connectorx refuses the read, and that table is
    read again through a type guard in SQL (`_read_guarded`): the cell is nulled and named in
    `_type_errors`, so its row (not the source) is quarantined. Required columns absent at the
    source are named in `_source_missing`.

    Tables are reflected when extraction starts, so a column added at the source is picked up
    on the next run. `credentials` is a SQLAlchemy URL or Engine. `backend` forces one of
    dlt's own backends (the SQLite type guard then applies to every read).
    """
    tables = domain.tables_of(source_name)
    url = str(getattr(credentials, "url", credentials))
    dynamic = url.startswith("sqlite")
    reads = {t: (domain.tables[t].cursor, domain.tables[t].lookback) for t in tables}
    cursors, required = cursors or {}, required or {}
    seen = {t: (rows, domain.tables[t].primary_key) for t, rows in (published or {}).items()}
    loader = None
    if leaves_out_published(url, backend):
        loader = _sqlite_arrow_loader(cursors, required, reads, seen)
    source = _sql_database_named(source_name)(
        credentials,
        table_names=list(tables),
        backend=backend or ("pyarrow" if dynamic else "connectorx"),
        chunk_size=chunk_size,
        reflection_level="full",
        defer_table_reflect=True,
        type_adapter_callback=_warehouse_types,
        table_adapter_callback=_permissive_landing,
        query_adapter_callback=_query_adapter(cursors, required, dynamic, reads),
        table_loader_class=loader,
    )
    for table in tables:
        source.resources[table].apply_hints(write_disposition="append")
        source.resources[table].add_map(_with_row_ids)
    return source


def leaves_out_published(credentials: Any, backend: str = "") -> bool:
    """Whether `sql_source` reads each table of this source whole into Arrow (a SQLite file,
    by connectorx), where it leaves out the rows its `published` names; other sources land
    the whole window of each read (the publish recognises what is unchanged)."""
    return str(getattr(credentials, "url", credentials)).startswith("sqlite") and not backend


def _with_row_ids(item: Any) -> Any:
    """An Arrow batch with each row's own `_dlt_id`, as dlt's normalizer would add it, but at
    extraction: the Parquet file extracted is then loaded as written. With dlt adding the ids
    (`normalize.parquet_normalizer.add_dlt_id`), normalize read and rewrote every extracted
    file (a third of the landing step on the benchmark's year, py-spy). Rows that are not
    Arrow (dlt's own row backends) get theirs from dlt's row normalizer."""
    import pyarrow as pa

    if isinstance(item, pa.Table | pa.RecordBatch) and ROW_ID not in item.schema.names:
        ids = random_ids(item.num_rows)
        return item.append_column(pa.field(ROW_ID, pa.string(), nullable=False), ids)
    return item


def random_ids(count: int) -> Any:
    """`count` random ids as an Arrow string array: 120 random bits each, base64 (20 chars),
    made in one piece (dlt's per-row loop took a tenth of the year's landing)."""
    import base64
    import secrets

    import numpy as np
    import pyarrow as pa

    text = base64.b64encode(secrets.token_bytes(15 * count))  # 15 bytes -> 20 chars, no "="
    offsets = np.arange(0, 20 * count + 1, 20, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))


@functools.cache
def _sql_database_named(name: str) -> Any:
    """`sql_database` renamed, made once per name: `with_args` rebuilds the factory's config
    spec from its signature (~1 s of CPU at every run: the day's increment profile)."""
    from dlt.sources.sql_database import sql_database

    return sql_database.with_args(name=name)


def _query_adapter(
    cursors: dict[str, Any],
    required: dict[str, list[str]],
    guard: bool,
    reads: dict[str, tuple[str, dt.timedelta]],
):
    def adapt(query: Any, table: Any) -> Any:
        return _landing_query(table, cursors, required, guard, reads)

    return adapt


def _landing_query(
    table: Any,
    cursors: dict[str, Any],
    required: dict[str, list[str]],
    guard: bool,
    reads: dict[str, tuple[str, dt.timedelta]],
    audit_columns: bool = True,
) -> Any:
    """SELECT the table's rows since its cursor. `guard`: numeric cells of another type are
    nulled and named in `_type_errors` (SQLite). Without `audit_columns` the audit columns are
    left out when they would be NULL on every row (connectorx cannot type an all-NULL column
    on SQLite; the loader adds them in Arrow)."""
    import sqlalchemy as sa

    columns = []
    errors = []
    for column in table.columns:
        if column.name in AUDIT_COLUMNS:
            continue  # not at the source: computed below
        if guard and isinstance(column.type, sa.Integer | sa.Float | sa.Numeric):
            ok = sa.func.typeof(column).in_(["integer", "real", "null"])
            columns.append(sa.case((ok, column)).label(column.name))
            errors.append(
                sa.case((~ok, sa.literal(f"{column.name}=") + sa.func.quote(column) + "; "))
            )
        else:
            columns.append(column)
    missing = [c for c in required.get(table.name, []) if c not in table.c]
    none = sa.cast(sa.null(), sa.Text)
    if missing:
        columns.append(sa.literal(",".join(missing)).label(MISSING_COLUMNS))
    elif audit_columns:
        columns.append(none.label(MISSING_COLUMNS))
    if errors:
        joined = sa.func.coalesce(errors[0], "")
        for error in errors[1:]:
            joined = joined + sa.func.coalesce(error, "")
        columns.append(sa.func.nullif(joined, "").label(TYPE_ERRORS))
    elif audit_columns:
        columns.append(none.label(TYPE_ERRORS))
    adapted = sa.select(*columns).select_from(table)
    cursor_column, lookback = reads[table.name]
    if cursors.get(table.name) is not None and cursor_column in table.c:
        since = cursors[table.name] - lookback
        adapted = adapted.where(table.c[cursor_column] >= since)
    return adapted


def _sqlite_arrow_loader(
    cursors: dict[str, Any],
    required: dict[str, list[str]],
    reads: dict[str, tuple[str, dt.timedelta]],
    seen: dict[str, tuple[Any, list[str], str]],
) -> type:
    """dlt table loader for SQLite: connectorx into Arrow, the type-guarded read if it refuses.
    `seen`: each table's published rows in the read's window, its key and version column."""
    from dlt.common import logger
    from dlt.sources.sql_database.helpers import TableLoader

    class SqliteArrowLoader(TableLoader):
        def load_rows(self, backend_kwargs: dict | None = None) -> Any:
            import connectorx as cx

            plain = _landing_query(self.table, cursors, required, False, reads, False)
            try:
                database = self.engine.url.database
                if not database or database == ":memory:":
                    raise ValueError("connectorx reads SQLite files only")
                found = cx.read_sql(
                    "sqlite://" + _url_path(database),
                    self.compile_query(plain),
                    return_type="arrow",
                )
            except Exception as exc:  # a cell of another type (or a type connectorx lacks)
                logger.info(f"table {self.table.name}: reading through the type guard ({exc})")
                yield from super().load_rows(backend_kwargs)  # the guarded query, via Arrow
                return
            found = _as_landed(found)
            if self.table.name in seen:
                found = _without_published(found, *seen[self.table.name])
            for start in range(0, found.num_rows, self.chunk_size):
                yield found.slice(start, self.chunk_size)

    return SqliteArrowLoader


def _without_published(
    table: Any, published: Any, key: list[str], position: str = "_position"
) -> Any:
    """`table` (a whole read, as landed) without the rows the publish would find unchanged:
    clean rows (no missing column, no type error) whose key, version and clock-checked
    columns `raw` holds (`published`: a frame of those columns, `published_in_window`) and
    whose key the read holds once.

    A read re-reads the rows at its cursor, and with a lookback the rows before it: the
    benchmark's day increment re-landed every row of the tables written in one instant and a
    day of its event table only for the audit to recognise them (a tenth of its CPU, py-spy).
    A row at the same key and version the audit would have found `unchanged`; one whose key
    the read holds twice it would quarantine as a duplicate, so it is landed. Values that do
    not convert to the read's types leave the read whole (the publish still recognises what
    is unchanged)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    names = list(published.columns)
    if not len(published) or not table.num_rows or any(c not in table.column_names for c in names):
        return table
    probe = table.select(names)
    probe = probe.append_column(position, pa.array(np.arange(table.num_rows)))
    clean = pc.and_(pc.is_null(table[MISSING_COLUMNS]), pc.is_null(table[TYPE_ERRORS]))
    try:
        # (rows of one window: a thread pool to convert them costs more than it saves)
        stored = pa.Table.from_pandas(published[names], preserve_index=False, nthreads=1)
        stored = stored.cast(probe.schema.remove(probe.schema.get_field_index(position)))
        once = probe.group_by(key).aggregate([(position, "count")])
        once = once.filter(pc.equal(once[f"{position}_count"], 1)).select(key)
        unchanged = (
            probe.filter(clean)
            .join(stored, keys=names, join_type="left semi")
            .join(once, keys=key, join_type="left semi")
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return table
    if not unchanged.num_rows:
        return table
    return table.filter(pc.invert(pc.is_in(probe[position], unchanged[position])))


def _url_path(database: str) -> str:
    import os
    import urllib.parse

    return urllib.parse.quote(os.path.abspath(database))


def _as_landed(table: Any, audit_columns: bool = True) -> Any:
    """An Arrow table read by connectorx as the guarded read would give it: timestamps in UTC
    (SQLite stores them naive, in UTC) and (with `audit_columns`) both audit columns present."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            utc = table.column(index).cast(pa.timestamp(field.type.unit, tz="UTC"))
            table = table.set_column(index, pa.field(field.name, utc.type), utc)
    for name in AUDIT_COLUMNS if audit_columns else ():
        if name not in table.column_names:
            table = table.append_column(
                pa.field(name, pa.string()), pa.nulls(table.num_rows, pa.string())
            )
    return table


def rest_source(
    domain: Domain,
    source_name: str,
    base_url: str,
    cursors: dict[str, Any] | None = None,
    required: dict[str, list[str]] | None = None,
    page_size: int | None = None,
) -> Any:
    """A declared HTTP feed's endpoints as one dlt source (cursor pagination), each table's rows
    from its cursor on (the endpoint's declared `start` when nothing was loaded yet)."""
    from dlt.sources.rest_api import rest_api_source

    declared = domain.sources[source_name]
    if not isinstance(declared, RestSource):
        raise ValueError(f"source {source_name!r} of domain {domain.name} is not a rest source")
    cursors, required = cursors or {}, required or {}
    resources = []
    for table, endpoint in declared.endpoints.items():
        since = cursors.get(table)
        resources.append(
            {
                "name": table,
                "columns": {
                    domain.tables[table].cursor: {"data_type": "timestamp", "nullable": False},
                    **AUDIT_HINTS,
                },
                "endpoint": {
                    "path": endpoint.path,
                    "data_selector": endpoint.data_selector,
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": endpoint.cursor_path,
                        "cursor_param": endpoint.cursor_param,
                    },
                    "params": {
                        endpoint.page_size_param: page_size or endpoint.page_size,
                        endpoint.since_param: _iso(since if since is not None else endpoint.start),
                    },
                },
            }
        )
    source = rest_api_source(
        {
            "client": {"base_url": base_url.rstrip("/") + "/"},
            "resource_defaults": {"write_disposition": "append"},
            "resources": resources,
        },
        name=source_name,
    )
    for table in declared.endpoints:
        if required.get(table):
            source.resources[table].add_map(_mark_missing(required[table]))
    return source


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _mark_missing(required: list[str]):
    def mark(row: dict) -> dict:
        missing = [c for c in required if c not in row]
        if missing:
            row[MISSING_COLUMNS] = ",".join(missing)
        return row

    return mark


def _permissive_landing(table: Any) -> Any:
    """Every column nullable and no primary key: landing takes what the source sends and the
    contract judges it (a key or a required column renamed at the source must reach the audit
    as a failing row, not fail the load). Keys are the declaration's (`primary_key`)."""
    import sqlalchemy as sa

    for column in table.columns:
        column.nullable = True
        column.primary_key = False
    # The audit columns the query adds, declared here so dlt knows their type before any row
    # carries one (otherwise every load warns that they "did not receive any data").
    for name in AUDIT_COLUMNS:
        if name not in table.c:
            table.append_column(sa.Column(name, sa.Text, nullable=True))
    return table


def _warehouse_types(sql_type: Any) -> Any:
    """Source timestamps are UTC; floats are doubles.

    SQLAlchemy 2.1's `Float` no longer subclasses `Numeric`, which dlt 1.31 uses to recognise
    floating-point columns, so they are handed over as a float-returning `Numeric`.
    """
    import sqlalchemy as sa

    if isinstance(sql_type, sa.DateTime):
        return sa.DateTime(timezone=True)
    if isinstance(sql_type, sa.Float):
        return sa.Numeric(asdecimal=False)
    return sql_type
