"""The cycle: one `daily_<spec>` run per period of the clock (a day or a month, the domain's
partition cadence), for the last complete period before it.

In production a cron schedule on the wall clock starts it; a replay clock does not pass by
itself, so locally a sensor reads the `clock` resource each tick and, once a period, starts
`daily_<spec>` for the period before (cycle_sensor.py). That run does the period in asset-graph
order — ingest (contracts block what follows), features, score, monitor — so the order is
Dagster's, not the trigger's. What to ask for is plain logic, tested without Dagster.
(The job keeps its name `daily_<spec>` whatever the cadence: it is what operators know.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mlops_platform.domains.periods import Cadence, Period, period_before

#: A period whose run failed this many times is left for a human (the alert names the runbook).
MAX_ATTEMPTS = 3
#: When the production schedule fires, per cadence: just after the period has ended.
CYCLE_CRONS: dict[str, str] = {"daily": "15 0 * * *", "monthly": "15 0 1 * *"}


@dataclass(frozen=True)
class Request:
    job: str
    partition: str
    attempt: int


@dataclass(frozen=True)
class Wait:
    reason: str


def scored_period(clock_day: dt.date, cadence: Cadence = "daily") -> Period:
    """The model predicts at each row's prediction point, so a period is batch-scored once all
    its prediction points have passed: on `clock_day`, the last complete period before it is
    scored (with the inputs its rows really had then, as in training) and then monitored —
    the day before (daily), the month before (monthly). Scoring the running period would feed
    the model inputs it was never trained on, or miss its last rows."""
    return period_before(clock_day, cadence)


def scored_day(clock_day: dt.date) -> dt.date:
    """The daily cadence's scored period as a day: the day before `clock_day`."""
    return scored_period(clock_day, "daily").start


def next_request(
    spec_name: str,
    clock_day: dt.date,
    succeeded: bool,
    in_progress: bool,
    failures: int,
    cadence: Cadence = "daily",
) -> Request | Wait:
    """What the cycle asks for on `clock_day`, given the runs already made for its period: the
    period's partition (again after a failure, up to `MAX_ATTEMPTS`), or why it waits."""
    period = scored_period(clock_day, cadence)
    if succeeded:
        return Wait(f"{period}: done")
    if in_progress:
        return Wait(f"{period}: waiting for the running daily_{spec_name} run")
    if failures >= MAX_ATTEMPTS:
        return Wait(
            f"{period}: daily_{spec_name} failed {failures} times; see the incident and its runbook"
        )
    return Request(f"daily_{spec_name}", period.key, failures)
