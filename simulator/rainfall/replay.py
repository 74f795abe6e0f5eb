"""The station's replay clock: create its database and move time forward.

The clock starts at 1949-01-01 00:00 (UTC-naive; the station's dates are one per row of the
data, see data.py). Moving it to `now`
  * publishes each day whose summary has been reported (`reported_at` = the day at 23:00),
    with `rain` empty;
  * fills `rain` once the rain report has arrived (the next day at 09:00), stamping `updated_at`.
So a day can be scored when it closes and its label arrives ten hours later, as in production.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from simulator.rainfall import tables
from simulator.rainfall.data import FIRST_DAY, MEASUREMENTS, read_days

#: When a day's summary is reported, and how much later its rain report arrives.
REPORTED_AFTER = dt.timedelta(hours=23)
RAIN_REPORT_DELAY = dt.timedelta(hours=10)
START = dt.datetime.combine(FIRST_DAY, dt.time())


@dataclass(frozen=True)
class ClockState:
    now: dt.datetime


@dataclass(frozen=True)
class AdvanceResult:
    now: dt.datetime
    released: int
    labels: int


def build_schedule(days: pd.DataFrame) -> pd.DataFrame:
    """Every day with the time its summary is reported and the time its rain report arrives."""
    frame = days.copy()
    midnight = pd.to_datetime(frame["obs_date"])
    frame["reported_at"] = midnight + REPORTED_AFTER
    frame["rain_reported_at"] = frame["reported_at"] + RAIN_REPORT_DELAY
    return frame


def create_source(url: str, start: dt.datetime = START, days: pd.DataFrame | None = None):
    """(Re)create the station database with the clock at `start`; `days` defaults to the whole
    NOAA series (a test may pass a slice)."""
    engine = sa.create_engine(url, future=True)
    tables.metadata.drop_all(engine)
    tables.metadata.create_all(engine)
    schedule = build_schedule(read_days() if days is None else days)
    columns = [c.name for c in tables.replay_days.columns]
    rows = schedule[columns].to_dict("records")
    with engine.begin() as conn:
        conn.execute(tables.replay_days.insert(), rows)
        conn.execute(tables.replay_clock.insert().values(id=1, now=min(start, START)))
    engine.dispose()
    return set_clock(url, start)


def read_clock(url: str) -> ClockState:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(tables.replay_clock)).one_or_none()
    except sa.exc.OperationalError as exc:
        raise RuntimeError(f"no weather station database at {url}: create it first") from exc
    finally:
        engine.dispose()
    if row is None:
        raise RuntimeError(f"the weather station database at {url} has no clock")
    return ClockState(now=row.now)


def advance(url: str, days: float) -> AdvanceResult:
    """Move the clock forward by `days` (may be fractional)."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    return set_clock(url, read_clock(url).now + dt.timedelta(days=days))


def set_clock(url: str, now: dt.datetime) -> AdvanceResult:
    """Move the clock to `now` (never backwards) and publish what has happened by then."""
    state = read_clock(url)
    if now < state.now:
        raise ValueError(f"the clock only moves forward: it is {state.now}, asked for {now}")
    sched, live = tables.replay_days, tables.daily_summary
    engine = sa.create_engine(url, future=True)
    with engine.begin() as conn:
        # The clock only moves forward, so what happens now is what falls in (then, now].
        names = ["station", "obs_date", "reported_at", *MEASUREMENTS]
        release = sa.select(
            *[sched.c[n] for n in names], sched.c.reported_at.label("updated_at")
        ).where(sched.c.reported_at > state.now, sched.c.reported_at <= now)
        released = conn.execute(live.insert().from_select([*names, "updated_at"], release)).rowcount
        due = sa.select(sched.c.station, sched.c.obs_date, sched.c.rain, sched.c.rain_reported_at)
        due = due.where(sched.c.rain_reported_at > state.now, sched.c.rain_reported_at <= now)
        reports = conn.execute(due).all()
        if reports:
            conn.execute(
                sa.update(live)
                .where(
                    live.c.station == sa.bindparam("s"),
                    live.c.obs_date == sa.bindparam("d"),
                    live.c.rain.is_(None),
                )
                .values(rain=sa.bindparam("r"), updated_at=sa.bindparam("t")),
                [{"s": s, "d": d, "r": r, "t": t} for s, d, r, t in reports],
            )
        labels = len(reports)
        conn.execute(
            sa.update(tables.replay_clock).where(tables.replay_clock.c.id == 1).values(now=now)
        )
    engine.dispose()
    return AdvanceResult(now=now, released=released, labels=labels)
