"""The flights domain's feature functions, and the base frame they start from.

`base_frame` turns the raw tables into one row per scheduled flight (schedule columns, the label
source, and `time_hour` as UTC-naive). Each feature function takes that frame and the other raw
tables (by name) and returns new columns aligned with it. The raw columns each one reads are
declared in `FEATURE_INPUTS` (checked against the column classification when a spec loads; a
test runs every function on its declared columns alone and compares with the whole tables).

Only what is known at the scheduled departure is used: the schedule, the calendar, the plane,
the weather observed at the origin at or before the scheduled departure hour, and how late the
flights that had landed before the flight's local day began arrived (`recent`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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
    # Earlier flights' outcomes: read, never returned (only shares over earlier days are).
    "recent": {
        "flights": (
            "year",
            "month",
            "day",
            "carrier",
            "origin",
            "dest",
            "arr_delay",
            "status",
            "updated_at",
        ),
    },
}

#: The recent-state features: the share of flights arriving more than `LATE_MINUTES` late, over
#: the previous `RECENT_DAYS` local days, by the flight's origin, carrier and destination, and
#: over the previous day at its origin.
RECENT_DAYS = 7
LATE_MINUTES = 15
#: Local days of the flights (the domain's partitions are New York days).
LOCAL_TIMEZONE = "America/New_York"
#: A share over few flights is shrunk toward the share of all flights of the same days, as if
#: this many flights had been seen at that share: a carrier with 3 flights a week is not "100%
#: late" after one delay.
PRIOR_FLIGHTS = 20
RECENT_COLUMNS = ["origin_late_1d", "origin_late_7d", "carrier_late_7d", "dest_late_7d"]


def _utc_naive(series: pd.Series) -> pd.Series:
    """UTC-naive timestamps (a datetime column skips pandas' conversion cache, which samples
    values one by one: see `mlops_platform.features.build._utc_naive`)."""
    cache = not pd.api.types.is_datetime64_any_dtype(series)
    return pd.to_datetime(series, utc=True, cache=cache).dt.tz_localize(None)


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


def recent(flights: pd.DataFrame, **_: pd.DataFrame) -> pd.DataFrame:
    """How late flights arrived lately, known before the flight's local day began: per earlier
    local day, the flights that had landed (status `landed`, an arrival delay) before the
    midnight that starts the next local day; so a flight of day d sees the outcomes of days
    d-7..d-1 that were known at 00:00 of day d, never one of its own day (however early the
    other flight left) nor one that landed after that midnight (it was still in the air).
    Missing (NaN) where no earlier day is in `flights` (the build reads `feature_days_after`
    days of the event table before the rows it builds, see the domain's declaration)."""
    day = pd.to_datetime(flights[["year", "month", "day"]]).dt.normalize()
    midnight = (
        (day + pd.Timedelta(days=1)).dt.tz_localize(LOCAL_TIMEZONE).dt.tz_convert("UTC")
    ).dt.tz_localize(None)
    landed_at = _utc_naive(flights["updated_at"])
    delay = pd.to_numeric(flights["arr_delay"], errors="coerce")
    known = (flights["status"] == "landed") & delay.notna() & (landed_at < midnight)
    outcomes = pd.DataFrame(
        {
            "day": day[known],
            "origin": flights["origin"][known],
            "carrier": flights["carrier"][known],
            "dest": flights["dest"][known],
            "late": (delay[known] > LATE_MINUTES).astype(float),
        }
    )
    days = pd.Index(sorted(day.unique()))
    result = pd.DataFrame(index=flights.index)
    overall_7d = _windowed(outcomes, [], days, RECENT_DAYS)
    for column, by, span in [
        ("origin_late_1d", "origin", 1),
        ("origin_late_7d", "origin", RECENT_DAYS),
        ("carrier_late_7d", "carrier", RECENT_DAYS),
        ("dest_late_7d", "dest", RECENT_DAYS),
    ]:
        overall = overall_7d if span == RECENT_DAYS else _windowed(outcomes, [], days, span)
        grouped = _windowed(outcomes, [by], days, span)
        prior = overall.set_index("day")["share"]
        grouped["prior"] = grouped["day"].map(prior)
        grouped["value"] = (grouped["late"] + PRIOR_FLIGHTS * grouped["prior"]) / (
            grouped["flights"] + PRIOR_FLIGHTS
        )
        keys = pd.DataFrame({"day": day, by: flights[by]})
        joined = keys.merge(grouped[["day", by, "value"]], on=["day", by], how="left")
        # A group with no flights lately: the share of all flights of those days.
        fallback = pd.to_numeric(day.map(prior), errors="coerce").to_numpy(dtype=float)
        values = pd.to_numeric(joined["value"], errors="coerce").to_numpy(dtype=float)
        result[column] = np.where(np.isnan(values), fallback, values)
    return result


def _windowed(outcomes: pd.DataFrame, by: list[str], days: pd.Index, span: int) -> pd.DataFrame:
    """Per day of `days` (and group), the late flights and all flights over the `span` local
    days before it (that day excluded), with `share` their ratio."""
    counts = outcomes.groupby([*by, "day"])["late"].agg(["sum", "count"]).reset_index()
    rows = []
    for shift in range(1, span + 1):  # the outcomes of day x count for days x+1 .. x+span
        moved = counts.assign(day=counts["day"] + pd.Timedelta(days=shift))
        rows.append(moved[moved["day"].isin(days)])
    if not rows or not any(len(r) for r in rows):
        return pd.DataFrame(columns=[*by, "day", "late", "flights", "share"])
    summed = pd.concat(rows).groupby([*by, "day"])[["sum", "count"]].sum().reset_index()
    summed = summed.rename(columns={"sum": "late", "count": "flights"})
    summed["share"] = summed["late"] / summed["flights"]
    return summed


FEATURE_FUNCTIONS: dict[str, Callable[..., pd.DataFrame]] = {
    "schedule": schedule,
    "calendar": calendar,
    "plane": plane,
    "weather": weather,
    "recent": recent,
}
