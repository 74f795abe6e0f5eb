"""The flights domain's feature functions, and the base frame they start from.

`base_frame` turns the raw tables into one row per scheduled flight (schedule columns, the label
source, and `time_hour` as UTC-naive). Each feature function takes that frame and the other raw
tables (by name) and returns new columns aligned with it. The raw columns each one reads are
declared in `FEATURE_INPUTS` (checked against the column classification when a spec loads; a
test runs every function on its declared columns alone and compares with the whole tables).

Only what is known at the scheduled departure is used: the schedule, the calendar, the plane,
and the weather observed at the origin at or before the scheduled departure hour.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

WEATHER_COLUMNS = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]

#: Weather older than this at departure time is treated as missing rather than carried forward.
WEATHER_MAX_AGE = pd.Timedelta(hours=3)

FEATURE_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "schedule": {
        "flights": ("carrier", "origin", "dest", "distance", "sched_dep_time", "sched_arr_time")
    },
    "calendar": {"flights": ("year", "month", "day")},
    # The tail number is only the join key: it is read, never returned as a feature.
    "plane": {
        "flights": ("tailnum", "year"),
        "planes": ("tailnum", "year", "seats", "engines", "manufacturer"),
    },
    "weather": {
        "flights": ("origin", "time_hour"),
        "weather": ("origin", "time_hour", *WEATHER_COLUMNS),
    },
}


def _utc_naive(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True).dt.tz_localize(None)


def base_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per scheduled flight, `time_hour` as UTC-naive (the weather join's clock)."""
    flights = tables["flights"].reset_index(drop=True).copy()
    flights["time_hour"] = _utc_naive(flights["time_hour"])
    return flights


def schedule(flights: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "carrier": flights["carrier"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "distance": flights["distance"].astype(float),
            "sched_dep_hour": (flights["sched_dep_time"] // 100).astype(float),
            "sched_arr_hour": (flights["sched_arr_time"] // 100).astype(float),
        },
        index=flights.index,
    )


def calendar(flights: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    dates = pd.to_datetime(flights[["year", "month", "day"]])
    return pd.DataFrame(
        {
            "month": flights["month"].astype(float),
            "day_of_week": dates.dt.dayofweek.astype(float),
            "day_of_year": dates.dt.dayofyear.astype(float),
        },
        index=flights.index,
    )


def plane(flights: pd.DataFrame, planes: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    attributes = planes.drop_duplicates("tailnum").set_index("tailnum")
    joined = flights[["tailnum", "year"]].join(attributes, on="tailnum", rsuffix="_built")
    return pd.DataFrame(
        {
            "plane_age": (joined["year"] - joined["year_built"]).astype(float),
            "seats": joined["seats"].astype(float),
            "engines": joined["engines"].astype(float),
            "manufacturer": joined["manufacturer"],
        },
        index=flights.index,
    )


def weather(flights: pd.DataFrame, weather: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    """Latest observation at the origin at or before the scheduled departure hour."""
    left = flights[["origin", "time_hour"]].reset_index()
    left["time_hour"] = _utc_naive(left["time_hour"])
    left = left.sort_values("time_hour")
    right = weather[["origin", "time_hour", *WEATHER_COLUMNS]].copy()
    right["time_hour"] = _utc_naive(right["time_hour"])
    right = right.sort_values("time_hour")
    joined = pd.merge_asof(
        left,
        right,
        on="time_hour",
        by="origin",
        direction="backward",
        tolerance=WEATHER_MAX_AGE,
        allow_exact_matches=True,
    )
    return joined.set_index("index")[WEATHER_COLUMNS].reindex(flights.index).astype(float)


FEATURE_FUNCTIONS: dict[str, Callable[..., pd.DataFrame]] = {
    "schedule": schedule,
    "calendar": calendar,
    "plane": plane,
    "weather": weather,
}
