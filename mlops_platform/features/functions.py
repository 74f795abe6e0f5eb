"""Feature functions a spec can name. Each takes the flights (one row per flight, schedule
columns only) and the reference tables, and returns new columns aligned with the flights.

The raw columns each one reads are declared in `inputs.py` (checked against the domain's
column classification when a spec loads).

Only what is known at the scheduled departure is used: the schedule, the calendar, the plane,
and the weather observed at the origin at or before the scheduled departure hour.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from mlops_platform.features.inputs import WEATHER_COLUMNS

#: Weather older than this at departure time is treated as missing rather than carried forward.
WEATHER_MAX_AGE = pd.Timedelta(hours=3)


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
    left = flights[["origin", "time_hour"]].reset_index().sort_values("time_hour")
    right = weather[["origin", "time_hour", *WEATHER_COLUMNS]].sort_values("time_hour")
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
