"""The time split: which labelled days of a feature table train a model, which are held out.

The most recent complete `holdout_days` are held out for the evaluation gate and the
`training_window_days` before them are the training set. The newest labelled day is left out:
it is only partly labelled (outcomes of its late events have not arrived yet).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import pandas as pd

from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.model.tags import WINDOW_PREFIX

if TYPE_CHECKING:
    from mlops_platform.specs import ModelSpec  # typing only: the model layer sits below specs


@dataclass(frozen=True)
class TimeSplit:
    train_start: dt.date
    train_end: dt.date  # inclusive
    holdout_start: dt.date
    holdout_end: dt.date  # inclusive

    def to_tags(self) -> dict[str, str]:
        return {f"{WINDOW_PREFIX}{f.name}": getattr(self, f.name).isoformat() for f in fields(self)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> TimeSplit:
        try:
            return cls(
                **{
                    f.name: dt.date.fromisoformat(tags[f"{WINDOW_PREFIX}{f.name}"])
                    for f in fields(cls)
                }
            )
        except KeyError as exc:
            raise ValueError(f"model version has no recorded time window ({exc})") from exc


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose label has arrived."""
    return table[table[LABEL].notna()]


def rows_between(table: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Rows whose event date is in [start, end]."""
    dates = pd.to_datetime(table[EVENT_DATE]).dt.date
    return table[(dates >= start) & (dates <= end)]


def days_between(start: dt.date, end: dt.date) -> str:
    """SQL filter of a feature table's rows from `start` to `end` (inclusive): the rows
    `rows_between` keeps, read from the warehouse alone."""
    return f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{end}'"


def plan_split(last_labelled_day: dt.date, spec: ModelSpec) -> TimeSplit:
    """The windows for a table whose newest labelled day is `last_labelled_day` (pure)."""
    holdout_end = last_labelled_day - dt.timedelta(days=1)
    holdout_start = holdout_end - dt.timedelta(days=spec.holdout_days - 1)
    train_end = holdout_start - dt.timedelta(days=1)
    train_start = train_end - dt.timedelta(days=spec.training_window_days - 1)
    return TimeSplit(train_start, train_end, holdout_start, holdout_end)


def split_by_time(
    table: pd.DataFrame, spec: ModelSpec
) -> tuple[pd.DataFrame, pd.DataFrame, TimeSplit]:
    """(train, holdout, split) from a feature table; raises ValueError if there is too little
    (fewer labelled rows than the spec's `min_train_rows` or `min_holdout_rows`)."""
    known = labelled(table)
    if known.empty:
        raise ValueError(f"no labelled rows yet for {spec.name}: labels arrive after the event")
    split = plan_split(pd.Timestamp(known[EVENT_DATE].max()).date(), spec)
    train = rows_between(known, split.train_start, split.train_end)
    holdout = rows_between(known, split.holdout_start, split.holdout_end)
    if len(train) < spec.min_train_rows or len(holdout) < spec.min_holdout_rows:
        raise ValueError(
            f"too little labelled data for {spec.name}: {len(train)} training rows "
            f"({split.train_start}..{split.train_end}) and {len(holdout)} held out "
            f"({split.holdout_start}..{split.holdout_end}); the spec needs {spec.min_train_rows} "
            f"(min_train_rows) and {spec.min_holdout_rows} (min_holdout_rows)"
        )
    return train, holdout, split


def holdout_of(table: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """The labelled held-out rows of a recorded split (what the gate evaluates on)."""
    return rows_between(labelled(table), split.holdout_start, split.holdout_end)


def training_rows_of(table: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """The labelled training rows of a recorded split (monitoring's drift reference)."""
    return rows_between(labelled(table), split.train_start, split.train_end)
