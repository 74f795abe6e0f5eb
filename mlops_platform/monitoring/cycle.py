"""The daily cycle in replay-clock order: ingest -> features -> score yesterday -> monitor it.

Wall-clock schedules cannot follow the replay clock, so a sensor does: each tick it reads the
source's clock and starts the first step of the current day that has not succeeded yet, one at
a time, so the steps run in order. Which steps there are is plain data (tested without Dagster).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    job: str
    partition: str | None


def steps_for(spec_name: str, day: dt.date) -> list[Step]:
    """The model predicts at scheduled departure, so a day is batch-scored once all its
    departures have passed: at the start of `day`, yesterday is scored (with the weather its
    flights really departed in, as in training) and then monitored. Scoring today at midnight
    would feed the model hours-old weather it was never trained on."""
    yesterday = str(day - dt.timedelta(days=1))
    return [
        Step("ingest", "ingest", None),
        Step("features", f"features_{spec_name}", None),
        Step("score", f"score_{spec_name}", yesterday),
        Step("monitor", f"monitor_{spec_name}", yesterday),
    ]


def next_step(steps: list[Step], succeeded: set[str], in_progress: set[str]) -> Step | None:
    """The first step not yet succeeded, unless a step is still running (then wait)."""
    if in_progress:
        return None
    return next((step for step in steps if step.name not in succeeded), None)
