"""The daily cycle: one `daily_<spec>` run per day of the clock, for the day before.

In production a cron schedule on the wall clock starts it; a replay clock does not pass by
itself, so locally a sensor reads the `clock` resource each tick and, once a day, starts
`daily_<spec>` for the day before (cycle_sensor.py). That run does the day in asset-graph
order — ingest (contracts block what follows), features, score, monitor — so the order is
Dagster's, not the trigger's. What to ask for is plain logic, tested without Dagster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: A day whose run failed this many times is left for a human (the alert names the runbook).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Request:
    job: str
    partition: str
    attempt: int


@dataclass(frozen=True)
class Wait:
    reason: str


def scored_day(clock_day: dt.date) -> dt.date:
    """The model predicts at each row's prediction point, so a day is batch-scored once all its
    prediction points have passed: at the start of `clock_day`, the day before is scored (with
    the inputs its rows really had then, as in training) and then monitored. Scoring today at
    midnight would feed the model hours-old inputs it was never trained on."""
    return clock_day - dt.timedelta(days=1)


def next_request(
    spec_name: str, clock_day: dt.date, succeeded: bool, in_progress: bool, failures: int
) -> Request | Wait:
    day = scored_day(clock_day)
    if succeeded:
        return Wait(f"{day}: done")
    if in_progress:
        return Wait(f"{day}: waiting for the running daily_{spec_name} run")
    if failures >= MAX_ATTEMPTS:
        return Wait(
            f"{day}: daily_{spec_name} failed {failures} times; see the incident and its runbook"
        )
    return Request(f"daily_{spec_name}", str(day), failures)
