"""Periods of a partition cadence (a day or a calendar month) as plain dates (no Dagster).

A period is known by its first day (`start`, also its partition key, as Dagster writes daily
and monthly keys) and its last day (`last`, inclusive). The daily cycle, scoring and monitoring
all reason in these periods, so one rule serves every cadence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Cadence = Literal["daily", "monthly"]
CADENCES: tuple[Cadence, ...] = ("daily", "monthly")


@dataclass(frozen=True, order=True)
class Period:
    start: dt.date
    last: dt.date  # inclusive

    @property
    def key(self) -> str:
        """The partition key (Dagster's daily and monthly keys are the first day, ISO)."""
        return self.start.isoformat()

    @property
    def end(self) -> dt.date:
        """The day after the period (exclusive end)."""
        return self.last + dt.timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.last - self.start).days + 1

    def __str__(self) -> str:
        return self.key if self.start == self.last else f"{self.start}..{self.last}"


def _check(cadence: str) -> None:
    if cadence not in CADENCES:
        raise ValueError(f"unknown cadence {cadence!r}; one of {', '.join(CADENCES)}")


def period_of(day: dt.date, cadence: Cadence) -> Period:
    """The period that holds `day`."""
    _check(cadence)
    if cadence == "daily":
        return Period(day, day)
    start = day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return Period(start, following - dt.timedelta(days=1))


def period_before(day: dt.date, cadence: Cadence) -> Period:
    """The last complete period before `day` begins: the day before (daily), the month before
    (monthly). At 2024-01-01 the month before is December 2023."""
    return period_of(period_of(day, cadence).start - dt.timedelta(days=1), cadence)


def period_from_key(key: str, cadence: Cadence) -> Period:
    """The period of a partition key; an error naming the key if it does not start one."""
    try:
        day = dt.date.fromisoformat(key)
    except ValueError as exc:
        raise ValueError(f"partition key {key!r} is not a date (YYYY-MM-DD)") from exc
    period = period_of(day, cadence)
    if period.start != day:
        raise ValueError(f"partition key {key!r} does not start a {cadence} period")
    return period


def periods_between(first: dt.date, last: dt.date, cadence: Cadence) -> list[Period]:
    """The periods that hold the days `first`..`last` (inclusive), in order."""
    found, day = [], first
    while day <= last:
        period = period_of(day, cadence)
        found.append(period)
        day = period.end
    return found
