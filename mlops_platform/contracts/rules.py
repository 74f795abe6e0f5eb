"""What each raw table promises: its contract, as plain data (no Great Expectations, no Dagster).

Row rules (non-null, ranges, categories, key uniqueness within the batch, cell types, required
columns present at the source, no time beyond the source's clock, no version older than the
stored one) are checked on every landed batch, so offending rows are quarantined one by one.
Table rules (key uniqueness, row count, freshness against the replay clock) are checked on the
table as it would be after the publish.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from mlops_platform.ingestion.sources import NATURAL_KEYS

ORIGINS = ["EWR", "JFK", "LGA"]


@dataclass(frozen=True)
class TableContract:
    table: str
    key: list[str]
    required_columns: list[str]
    not_null: list[str]
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    #: columns whose allowed values come from another raw table: {column: (table, column)}
    references: dict[str, tuple[str, str]] = field(default_factory=dict)
    min_rows: int = 1
    #: (column, maximum age relative to the replay clock) or None
    freshness: tuple[str, dt.timedelta] | None = None
    #: the column that orders a key's versions (newest wins; None: the latest load wins)
    version: str | None = None
    #: time columns that may not be later than the source's clock (or now) + `future_tolerance`
    not_after_clock: list[str] = field(default_factory=list)
    future_tolerance: dt.timedelta = dt.timedelta(hours=1)
    #: a row deleted at the source: "reflect" (delete it from raw, keep it in quarantine with
    #: status `deleted`), "flag" (keep it in raw, quarantine a pending entry and fail the
    #: contract), or "ignore" (the source cannot list its keys, e.g. an HTTP feed)
    on_source_delete: Literal["reflect", "flag", "ignore"] = "ignore"


CONTRACTS: dict[str, TableContract] = {
    "flights": TableContract(
        table="flights",
        key=NATURAL_KEYS["flights"],
        required_columns=[
            *NATURAL_KEYS["flights"],
            "sched_dep_time",
            "sched_arr_time",
            "tailnum",
            "dest",
            "distance",
            "hour",
            "minute",
            "time_hour",
            "status",
            "updated_at",
        ],
        not_null=[*NATURAL_KEYS["flights"], "sched_dep_time", "time_hour", "status", "updated_at"],
        ranges={
            "month": (1, 12),
            "day": (1, 31),
            "sched_dep_time": (0, 2359),
            "sched_arr_time": (0, 2359),
            "hour": (0, 23),
            "minute": (0, 59),
            "distance": (1, 6000),
            "dep_time": (1, 2400),
            "arr_time": (1, 2400),
            "dep_delay": (-120, 1800),
            "arr_delay": (-120, 1800),
            "air_time": (5, 800),
        },
        categories={
            "origin": ORIGINS,
            "status": ["scheduled", "landed", "cancelled", "diverted"],
        },
        references={"carrier": ("airlines", "carrier")},
        freshness=("updated_at", dt.timedelta(days=2)),
        version="updated_at",
        not_after_clock=["updated_at"],
        # A flight record vanishing from the ops system is an incident, not a fact to copy.
        on_source_delete="flag",
    ),
    "weather": TableContract(
        table="weather",
        key=NATURAL_KEYS["weather"],
        required_columns=[
            *NATURAL_KEYS["weather"],
            "temp",
            "humid",
            "wind_speed",
            "precip",
            "visib",
        ],
        not_null=NATURAL_KEYS["weather"],
        ranges={
            "temp": (-40, 130),
            "dewp": (-60, 100),
            "humid": (0, 100),
            "wind_speed": (0, 150),
            "precip": (0, 10),
            "visib": (0, 10),
            "wind_dir": (0, 360),
            "wind_gust": (0, 200),
            "pressure": (850, 1100),
            "hour": (0, 23),
        },
        categories={"origin": ORIGINS},
        freshness=("time_hour", dt.timedelta(days=2)),
        # An hour's observation is published once: a re-read of it is the same version.
        version="time_hour",
        not_after_clock=["time_hour"],
    ),
    "planes": TableContract(
        table="planes",
        key=NATURAL_KEYS["planes"],
        required_columns=["tailnum", "year", "manufacturer", "model", "engines", "seats"],
        not_null=["tailnum"],
        ranges={"year": (1940, 2014), "engines": (1, 8), "seats": (1, 1000)},
        version="updated_at",
        not_after_clock=["updated_at"],
        # Reference data: a retired entry leaves the warehouse too.
        on_source_delete="reflect",
    ),
    "airlines": TableContract(
        table="airlines",
        key=NATURAL_KEYS["airlines"],
        required_columns=["carrier", "name"],
        not_null=["carrier", "name"],
        version="updated_at",
        not_after_clock=["updated_at"],
        # Reference data: a retired entry leaves the warehouse too.
        on_source_delete="reflect",
    ),
    "airports": TableContract(
        table="airports",
        key=NATURAL_KEYS["airports"],
        required_columns=["faa", "name", "lat", "lon"],
        not_null=["faa"],
        ranges={"lat": (-90, 90), "lon": (-180, 180), "alt": (-1500, 30000)},
        version="updated_at",
        not_after_clock=["updated_at"],
        # Reference data: a retired entry leaves the warehouse too.
        on_source_delete="reflect",
    ),
}
