"""A domain's whole history as the platform would build it: the feature table and, per row,
when its label arrives.

The raw tables come from the simulator's source data (the same frames the replay's source
system is created from), and the feature table from `features.build.build_feature_table`, the
function the platform's features step calls, with the domain's own feature functions. The
label arrival time is the one the replay's source system uses (a flight's outcome time, the
station's next-morning rain report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.features.build import build_feature_table
from mlops_platform.model.columns import EVENT_DATE
from mlops_platform.specs import ModelSpec

#: Column of the history holding when each row's label arrives (NaT: never).
ARRIVES = "label_arrives"


@dataclass(frozen=True)
class History:
    """The feature table (labels final) and when each row's label arrives, aligned."""

    spec: ModelSpec
    table: pd.DataFrame
    arrives: np.ndarray  # datetime64[ns], NaT where the label never arrives

    def __post_init__(self) -> None:
        if len(self.arrives) != len(self.table):
            raise ValueError(
                f"{len(self.arrives)} arrival times for {len(self.table)} feature rows"
            )

    @property
    def days(self) -> np.ndarray:
        return self.table[EVENT_DATE].to_numpy(dtype="datetime64[D]")


def _flights() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    from simulator.flights.nycflights import read_table
    from simulator.flights.replay import build_schedule

    schedule = build_schedule(read_table("flights"))
    arrives = schedule["outcome_at"].where(schedule["outcome_status"] == "landed")
    # The outcome as the source system shows it once known (`status`, `updated_at` the landing
    # time): the recent-state features read earlier flights' outcomes known by each midnight.
    schedule = schedule.assign(status=schedule["outcome_status"], updated_at=schedule["outcome_at"])
    tables = {
        "flights": schedule,
        "weather": read_table("weather"),
        "planes": read_table("planes"),
    }
    return tables, schedule.assign(**{ARRIVES: arrives})


def _rainfall() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    from simulator.rainfall.data import read_days
    from simulator.rainfall.replay import build_schedule

    schedule = build_schedule(read_days())
    schedule["obs_date"] = pd.to_datetime(schedule["obs_date"])
    return {"daily_summary": schedule}, schedule.assign(**{ARRIVES: schedule["rain_reported_at"]})


#: Per domain: (raw tables by name, the event table with `ARRIVES`).
SOURCES: dict[str, Callable[[], tuple[dict[str, pd.DataFrame], pd.DataFrame]]] = {
    "flights": _flights,
    "rainfall": _rainfall,
}


def history_from(spec: ModelSpec, tables: dict[str, pd.DataFrame], events: pd.DataFrame) -> History:
    """The feature table built from `tables` and `events[ARRIVES]` matched to it by the
    domain's entity key."""
    key = list(domain_for(spec).entity_key)
    table = build_feature_table(tables, spec)
    arrivals = events[[*key, ARRIVES]].copy()
    for column in key:  # the feature table's key columns as the base frame typed them
        if pd.api.types.is_datetime64_any_dtype(table[column]):
            arrivals[column] = pd.to_datetime(arrivals[column])
    matched = table[key].merge(arrivals, on=key, how="left", validate="one_to_one")
    arrives = pd.to_datetime(matched[ARRIVES]).to_numpy(dtype="datetime64[ns]")
    return History(spec, table, arrives)


def load_history(spec: ModelSpec) -> History:
    """The spec's domain's whole history from the simulator's source data."""
    domain = domain_for(spec).name
    if domain not in SOURCES:
        raise ValueError(f"no backtest source for domain {domain!r}; known: {sorted(SOURCES)}")
    tables, events = SOURCES[domain]()
    return history_from(spec, tables, events)
