"""Build a spec's feature table from its domain's raw tables (no Dagster).

The table follows the contract in `mlops_platform/model/columns.py`: the domain's entity key,
`event_date` (the day; partition), `event_at` (the prediction point, UTC-naive; sort order),
the spec's features, and `label` (NaN until the outcome arrives). The domain supplies the base
frame (one row per entity) and the feature functions (`domains/<domain>/features.py`); its
declaration says how the event date and time are derived and where the label comes from.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from mlops_platform.domains import Domain, domain_for, features_module
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, LABEL
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.spans import day_spans

if TYPE_CHECKING:
    from mlops_platform.warehouse import WarehouseStore

__all__ = [
    "LABEL",
    "build_feature_table",
    "feature_table_columns",
    "features_from_warehouse",
    "write_features",
]


def _utc_naive(series: pd.Series) -> pd.Series:
    """UTC-naive timestamps. A column that is already datetime skips pandas' conversion cache:
    deciding whether to cache, `to_datetime` reads up to 500 values one `Timestamp` at a time,
    which cost ~60x the conversion itself (3% of a replay day's profile); strings still use it."""
    cache = not pd.api.types.is_datetime64_any_dtype(series)
    return pd.to_datetime(series, utc=True, cache=cache).dt.tz_localize(None)


def needed_columns(domain: Domain, spec: ModelSpec) -> set[str]:
    """Columns of the event table the build reads: key, event time, label, function inputs."""
    inputs = features_module(domain).FEATURE_INPUTS
    return {
        *domain.entity_key,
        *domain.event.date.columns,
        *domain.event.at.columns,
        spec.target.column,
        *(
            c
            for f in spec.features.functions
            for c in inputs.get(f, {}).get(domain.event.table, ())
        ),
    }


def event_date_of(frame: pd.DataFrame, domain: Domain) -> pd.Series:
    date = domain.event.date
    if date.parts:
        year, month, day = date.parts
        return pd.to_datetime(
            pd.DataFrame({"year": frame[year], "month": frame[month], "day": frame[day]})
        )
    stamp = pd.to_datetime(frame[date.column])
    if stamp.dt.tz is not None:  # the day where the domain lives
        stamp = stamp.dt.tz_convert(domain.partitions.timezone).dt.tz_localize(None)
    return stamp.dt.normalize()


def event_at_of(frame: pd.DataFrame, domain: Domain) -> pd.Series:
    at = domain.event.at
    stamp = _utc_naive(frame[at.column])
    if at.plus_minutes:
        stamp = stamp + pd.to_timedelta(frame[at.plus_minutes], unit="min")
    return stamp


def feature_table_columns(spec: ModelSpec) -> list[str]:
    """The feature table's columns, in order."""
    key = list(domain_for(spec).entity_key)
    features = [c for c in spec.features.columns if c not in key]
    return [*key, EVENT_DATE, EVENT_AT, *features, LABEL]


def build_feature_table(tables: dict[str, pd.DataFrame], spec: ModelSpec) -> pd.DataFrame:
    """Features for every entity and, where the outcome has arrived, the label.

    `tables`: the domain's `feature_inputs` raw tables by name. Raises ValueError naming what
    is missing when an input lacks a needed column or a function is unknown.
    """
    domain = domain_for(spec)
    module = features_module(domain)
    event_table = domain.event.table
    absent_tables = [t for t in domain.feature_inputs if t not in tables]
    if absent_tables:
        raise ValueError(f"the feature build needs raw tables {absent_tables}")
    missing = needed_columns(domain, spec) - set(tables[event_table].columns)
    if missing:
        raise ValueError(f"raw.{event_table} lacks columns {sorted(missing)}")
    unknown = [f for f in spec.features.functions if f not in module.FEATURE_FUNCTIONS]
    if unknown:
        raise ValueError(f"spec {spec.name} names unknown feature functions {unknown}")

    base = module.base_frame(tables).reset_index(drop=True)
    others = {name: frame for name, frame in tables.items() if name != event_table}
    parts = [module.FEATURE_FUNCTIONS[name](base, **others) for name in spec.features.functions]
    features = pd.concat(parts, axis=1)
    features = features.loc[:, ~features.columns.duplicated()]
    absent = [c for c in spec.features.columns if c not in features.columns]
    if absent:
        raise ValueError(
            f"spec {spec.name} lists features {absent} that its functions "
            f"{spec.features.functions} do not produce"
        )

    key = list(domain.entity_key)
    table = base[key].copy()
    table[EVENT_DATE] = event_date_of(base, domain)
    table[EVENT_AT] = event_at_of(base, domain)
    for column in spec.features.columns:
        if column not in key:
            table[column] = features[column]
    table[LABEL] = label_of(base, spec)
    return table.sort_values([EVENT_AT, *key]).reset_index(drop=True)


def input_where(
    domain: Domain, table: str, since: dt.date | None, until: dt.date | None = None
) -> str:
    """SQL selecting the rows of a raw input that the feature rows of event days in
    [`since`, `until`) read (either bound may be open; both open: every row). A row reaches
    `feature_days_before` days each way (a look-back, and a UTC hour that is the next local
    day), and `feature_days_after` days later (a feature over earlier days' rows), plus a day
    of margin past `until`."""
    declared = domain.tables[table]
    if declared.feature_date is None or (since is None and until is None):
        return ""
    day, reach = declared.feature_date.sql(), declared.feature_days_before
    bounds = []
    if since is not None:
        earliest = since - dt.timedelta(days=reach + declared.feature_days_after)
        bounds.append(f"{day} >= DATE '{earliest}'")
    if until is not None:
        bounds.append(f"{day} < DATE '{until + dt.timedelta(days=reach + 1)}'")
    return " AND ".join(bounds)


def features_from_warehouse(
    warehouse: WarehouseStore,
    spec: ModelSpec,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> pd.DataFrame:
    """The feature table built from the warehouse's raw tables: every entity, or only those
    whose event date is in [`since`, `until`) (each input read as far each way as its
    declaration says a row reaches)."""
    domain = domain_for(spec)
    tables = {
        table: warehouse.read_table("raw", table, where=input_where(domain, table, since, until))
        for table in domain.feature_inputs
    }
    table = build_feature_table(tables, spec)
    # Inputs are read past the bounds (look-back, margin), but only rows inside them are
    # built here: an earlier row built here would lack its own look-back.
    keep = pd.Series(True, index=table.index)
    if since is not None:
        keep &= table[EVENT_DATE] >= pd.Timestamp(since)
    if until is not None:
        keep &= table[EVENT_DATE] < pd.Timestamp(until)
    return table if keep.all() else table[keep].reset_index(drop=True)


#: Rows of the event table one span of a build reads at most (plus its inputs' reach): a
#: build's memory follows a span, not the table (~2.6 kB an event row while it is built).
SPAN_ROWS = 250_000


def spans(
    days: list[tuple[dt.date, int]], since: dt.date | None, limit: int | None = None
) -> list[tuple[dt.date, dt.date | None]]:
    """The build's spans: `warehouse.spans.day_spans` with at most `SPAN_ROWS` rows each."""
    return day_spans(days, since, SPAN_ROWS if limit is None else limit)


def write_features(warehouse: WarehouseStore, spec: ModelSpec, since: dt.date | None = None) -> int:
    """Build `features.<spec>` span by span (see `spans`): everything (`since` None: into a
    side table swapped in with one transaction, so readers never see half a table), or the
    rows from `since` on (each span replaced in its own transaction). Returns the rows built."""
    from mlops_platform.warehouse.base import quote

    domain = domain_for(spec)
    day = domain.event.date.sql()
    start = f" WHERE {day} >= DATE '{since}'" if since else ""
    counts = warehouse.query(
        f"SELECT {day} AS day, count(*) AS n FROM raw.{quote(domain.event.table)}{start} "
        "GROUP BY 1 ORDER BY 1"
    )
    pairs = zip(counts["day"], counts["n"], strict=True)
    days = [(pd.Timestamp(d).date(), int(n)) for d, n in pairs]
    cuts = spans(days, since)
    # `event_date` holds midnights: compared as it is, its index serves the range (PostgreSQL).
    event_day = EVENT_DATE
    if since is not None and not cuts:
        cuts = [(since, None)]
    if since is None and not cuts:  # no rows at all: an empty table with every column
        empty = features_from_warehouse(warehouse, spec)
        return warehouse.replace_table("features", spec.name, empty)
    side, built = f"{spec.name}__rebuild", 0
    for i, (first, end) in enumerate(cuts):
        table = features_from_warehouse(warehouse, spec, first, end)
        built += len(table)
        if since is not None:
            bound = f" AND {event_day} < DATE '{end}'" if end else ""
            where = f"{event_day} >= DATE '{first}'{bound}"
            warehouse.replace_rows("features", spec.name, table, where=where)
        elif i == 0:
            warehouse.replace_table("features", side, table)
        else:
            warehouse.append("features", side, table)
    if since is None:
        with warehouse.transaction() as tx:
            tx.execute(f"DROP TABLE IF EXISTS features.{quote(spec.name)}")
            tx.execute(f"ALTER TABLE features.{quote(side)} RENAME TO {quote(spec.name)}")
    warehouse.ensure_index("features", spec.name, EVENT_DATE)
    return built


def label_of(base: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The label where the outcome is known, NaN where it has not arrived (or never will)."""
    source = base[spec.target.column].astype(float)
    if spec.task == "classification":
        return (source > spec.target.threshold).astype(float).where(source.notna())
    return source
