"""The rainfall domain's feature functions, and the base frame they start from.

`base_frame` turns the raw `daily_summary` rows into one row per station and day, in date order.
Each feature function takes that frame and returns new columns aligned with it. The raw columns
each one reads are declared in `FEATURE_INPUTS` (checked against the column classification when
a spec loads).

Only what is known when the day's summary is reported (23:00) is used: the day's own
measurements, and how they changed since the day before. Never `rain`: it arrives the next
morning (the label).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

MEASUREMENTS = [
    "temperature",
    "dew_point",
    "sea_level_pressure",
    "visibility",
    "average_wind_speed",
    "max_sustained_wind_speed",
    "minimum_temperature",
    "maximum_temperature",
]
KEY = ["station", "obs_date"]

FEATURE_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "measurements": {"daily_summary": tuple(MEASUREMENTS)},
    "changes": {"daily_summary": (*KEY, *MEASUREMENTS)},
}


def base_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per station and day, in date order, `obs_date` as a timestamp."""
    days = tables["daily_summary"].copy()
    days["obs_date"] = pd.to_datetime(days["obs_date"])
    return days.sort_values(KEY).reset_index(drop=True)


def measurements(days: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    """The day's eight measurements, as reported."""
    return days[MEASUREMENTS].astype(float)


def changes(days: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    """Each measurement minus the station's previous day's; missing when that day is not in
    the frame (a gap, or the first day read), never taken from an older day."""
    dates = pd.to_datetime(days["obs_date"])
    order = days.assign(_date=dates).sort_values(["station", "_date"])
    previous = order.groupby("station")[[*MEASUREMENTS, "_date"]].shift(1)
    consecutive = (order["_date"] - previous["_date"]) == pd.Timedelta(days=1)
    delta = order[MEASUREMENTS].astype(float) - previous[MEASUREMENTS].astype(float)
    delta = delta.where(consecutive, axis=0)
    delta.columns = [f"{name}_change" for name in MEASUREMENTS]
    return delta.reindex(days.index)


FEATURE_FUNCTIONS: dict[str, Callable[..., pd.DataFrame]] = {
    "measurements": measurements,
    "changes": changes,
}
