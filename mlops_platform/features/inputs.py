"""The raw columns each feature function reads, per input table (plain data, no pandas: read
when a spec loads, to check the features against the domain's column classification).

A test runs every function on its declared columns alone and compares with the whole tables,
so this declaration is the truth about what the functions read.
"""

from __future__ import annotations

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
