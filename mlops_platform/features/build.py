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

if TYPE_CHECKING:
    from mlops_platform.warehouse import WarehouseStore

__all__ = ["LABEL", "build_feature_table", "feature_table_columns", "features_from_warehouse"]


def _utc_naive(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True).dt.tz_localize(None)


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


def input_where(domain: Domain, table: str, since: dt.date | None) -> str:
    """SQL selecting the rows of a raw input that the feature rows on or after `since` read
    (empty: every row)."""
    declared = domain.tables[table]
    if since is None or declared.feature_date is None:
        return ""
    start = since - dt.timedelta(days=declared.feature_days_before)
    return f"{declared.feature_date.sql()} >= DATE '{start}'"


def features_from_warehouse(
    warehouse: WarehouseStore, spec: ModelSpec, since: dt.date | None = None
) -> pd.DataFrame:
    """The feature table built from the warehouse's raw tables: every entity, or only those
    whose event date is on or after `since` (each input read as far back as its declaration
    says a change reaches)."""
    domain = domain_for(spec)
    tables = {
        table: warehouse.read_table("raw", table, where=input_where(domain, table, since))
        for table in domain.feature_inputs
    }
    table = build_feature_table(tables, spec)
    if since is not None:
        # Inputs are read from before `since` (a look-back), but only rows from `since` on are
        # rebuilt: an earlier row built here would lack its own look-back.
        table = table[table[EVENT_DATE] >= pd.Timestamp(since)].reset_index(drop=True)
    return table


def label_of(base: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The label where the outcome is known, NaN where it has not arrived (or never will)."""
    source = base[spec.target.column].astype(float)
    if spec.task == "classification":
        return (source > spec.target.threshold).astype(float).where(source.notna())
    return source
