"""The retraining policies compared, and the steps of the walk (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

#: How a policy decides to retrain.
NEVER, CADENCE, DRIFT, PERFORMANCE, DEFAULT = "never", "cadence", "drift", "performance", "default"


@dataclass(frozen=True)
class Policy:
    name: str
    retrain: str  # NEVER | CADENCE | DRIFT | PERFORMANCE | DEFAULT
    gated: bool = True  # a challenger replaces the model only if the platform's gate passes
    every_steps: int = 0  # CADENCE: retrain after this many steps

    def __post_init__(self) -> None:
        if self.retrain not in (NEVER, CADENCE, DRIFT, PERFORMANCE, DEFAULT):
            raise ValueError(f"unknown retrain rule {self.retrain!r} of policy {self.name}")
        if self.retrain == CADENCE and self.every_steps < 1:
            raise ValueError(f"policy {self.name}: a cadence needs every_steps >= 1")


def standard_policies(every_steps: int, cadence: str) -> list[Policy]:
    """The six policies of the backtest; `cadence` names the fixed cadence (e.g. "14d")."""
    return [
        Policy("static", NEVER),
        Policy(f"every {cadence}", CADENCE, gated=False, every_steps=every_steps),
        Policy(f"every {cadence} + gate", CADENCE, every_steps=every_steps),
        Policy("drift", DRIFT),
        Policy("performance", PERFORMANCE),
        Policy("default", DEFAULT),
    ]


@dataclass(frozen=True)
class Step:
    """Event days [start, end] scored by each policy's current model; at `clock` (the day after
    `end`, 00:00) the step is monitored and a retrain may start, trained on the labels arrived
    by then and used from the next step on."""

    start: dt.date
    end: dt.date

    @property
    def clock(self) -> pd.Timestamp:
        return pd.Timestamp(self.end + dt.timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def plan_steps(first: dt.date, last: dt.date, unit: str) -> list[Step]:
    """Days or calendar months from `first` to `last` (inclusive)."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    if unit == "day":
        return [Step(d, d) for d in pd.date_range(first, last, freq="D").date]
    if unit == "month":
        steps, start = [], first
        while start <= last:
            end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
            steps.append(Step(start, min(end, last)))
            start = end + dt.timedelta(days=1)
        return steps
    raise ValueError(f"unknown step {unit!r}: day or month")
