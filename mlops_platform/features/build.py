"""Build a spec's feature table: one row per flight, its features, and its label if known."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from mlops_platform.features.functions import FEATURE_FUNCTIONS
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, LABEL
from mlops_platform.specs import ModelSpec

if TYPE_CHECKING:
    from mlops_platform.warehouse import Warehouse

KEY = ["year", "month", "day", "carrier", "flight", "origin"]
#: SQL for a raw flight's (local) date, in both warehouses' dialects.
FLIGHT_DATE_SQL = "make_date(CAST(year AS INTEGER), CAST(month AS INTEGER), CAST(day AS INTEGER))"


def _utc_naive(series: pd.Series) -> pd.Series:
    series = pd.to_datetime(series, utc=True)
    return series.dt.tz_localize(None)


def build_feature_table(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, spec: ModelSpec
) -> pd.DataFrame:
    """Features for every flight and, where the outcome has arrived, the label.

    Raises ValueError naming what is missing when an input lacks a needed column.
    """
    needed = {
        *KEY,
        "sched_dep_time",
        "sched_arr_time",
        "minute",
        "time_hour",
        "dest",
        "distance",
        "tailnum",
        spec.target.column,
    }
    missing = needed - set(flights.columns)
    if missing:
        raise ValueError(f"raw.flights lacks columns {sorted(missing)}")
    unknown = [f for f in spec.features.functions if f not in FEATURE_FUNCTIONS]
    if unknown:
        raise ValueError(f"spec {spec.name} names unknown feature functions {unknown}")

    flights = flights.reset_index(drop=True).copy()
    flights["time_hour"] = _utc_naive(flights["time_hour"])
    weather = weather.copy()
    weather["time_hour"] = _utc_naive(weather["time_hour"])

    parts = [
        FEATURE_FUNCTIONS[name](flights, weather=weather, planes=planes)
        for name in spec.features.functions
    ]
    features = pd.concat(parts, axis=1)
    features = features.loc[:, ~features.columns.duplicated()]
    absent = [c for c in spec.features.columns if c not in features.columns]
    if absent:
        raise ValueError(
            f"spec {spec.name} lists features {absent} that its functions "
            f"{spec.features.functions} do not produce"
        )

    table = flights[KEY].copy()
    table["flight_date"] = pd.to_datetime(flights[["year", "month", "day"]])
    table["sched_dep_at"] = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")
    for column in spec.features.columns:
        if column not in KEY:
            table[column] = features[column]
    table[LABEL] = label_of(flights, spec)
    table = table.sort_values(["sched_dep_at", "carrier", "flight"]).reset_index(drop=True)
    # ADAPTER (model helper, until the domain helper's features produce them): the feature
    # table's contract names (`model/columns.py`).
    return table.rename(columns={"flight_date": EVENT_DATE, "sched_dep_at": EVENT_AT})


def features_from_warehouse(
    warehouse: Warehouse, spec: ModelSpec, since: dt.date | None = None
) -> pd.DataFrame:
    """The feature table built from the warehouse's raw tables: every flight, or only those on
    or after `since` (with the weather from the day before: the 3-hour look-back crosses
    midnight)."""
    flights_where = weather_where = ""
    if since is not None:
        flights_where = f"{FLIGHT_DATE_SQL} >= DATE '{since}'"
        weather_where = f"time_hour >= DATE '{since - dt.timedelta(days=1)}'"
    return build_feature_table(
        warehouse.read_table("raw", "flights", where=flights_where),
        warehouse.read_table("raw", "weather", where=weather_where),
        warehouse.read_table("raw", "planes"),
        spec,
    )


def label_of(flights: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The label where the outcome is known, NaN where it has not arrived (or never will)."""
    source = flights[spec.target.column].astype(float)
    if spec.task == "classification":
        return (source > spec.target.threshold).astype(float).where(source.notna())
    return source
