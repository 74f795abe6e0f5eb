"""What time it is, for the platform: the one place production code reads "now" from.

- `WallClock`: the machine's UTC time. Production.
- `TableClock`: the newest `now` in a table of a SQL database, whose URL and table are
  configured. Locally that table is the replay source's clock (the simulator moves it forward);
  the platform knows only "a table with a timestamp column `now`", never who writes it.

Contract freshness, the daily cycle, retention and sensors take a `Clock` resource; plain
callers (CLI) use `Clock.now()` the same way. Times are UTC, naive (as the warehouse stores them).
Which clock a profile uses is chosen in `profiles.clock_for`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dagster as dg
from pydantic import Field

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ClockUnavailable(RuntimeError):
    """The configured clock cannot be read (no database, no table, no row)."""


class Clock(dg.ConfigurableResource):
    """The platform's notion of now (UTC, naive). Subclasses say where it comes from."""

    def now(self) -> dt.datetime:
        raise NotImplementedError

    @property
    def follows_wall_time(self) -> bool:
        """True when time passes by itself, so wall-clock cron schedules apply."""
        return False


class WallClock(Clock):
    """The machine's clock: production."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    @property
    def follows_wall_time(self) -> bool:
        return True


class TableClock(Clock):
    """The newest `now` in `table` of the database at `url` (a replay clock, locally)."""

    url: str = Field(description="SQLAlchemy URL of the database that holds the clock table")
    table: str = Field(default="replay_clock", description="Table with a timestamp column `now`")

    def now(self) -> dt.datetime:
        return read_table_clock(self.url, self.table)


def read_table_clock(url: str, table: str = "replay_clock") -> dt.datetime:
    """`max(now)` of `table` at `url`; `ClockUnavailable` naming the database if there is none."""
    import sqlalchemy as sa

    if not _IDENTIFIER.match(table):
        raise ValueError(f"clock table must be a plain SQL identifier, got {table!r}")
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        # Connecting would create an empty file where the source database will be made.
        if not database.startswith("file:") and not Path(database).is_file():
            raise ClockUnavailable(f"no clock database at {database} (not created yet)")
    from mlops_platform.reliability import with_pg_timeouts

    engine = sa.create_engine(with_pg_timeouts(url), future=True)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.text(f'SELECT max("now") FROM "{table}"')).scalar()
    except sa.exc.SQLAlchemyError as exc:
        where = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise ClockUnavailable(f"no clock table {table!r} at {where}: {exc.orig}") from exc
    finally:
        engine.dispose()
    if value is None:
        raise ClockUnavailable(f"the clock table {table!r} has no time yet")
    if isinstance(value, str):  # SQLite returns the stored text for an aggregate
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if value.tzinfo else value


def time_at_load(clock: Clock) -> dt.datetime | None:
    """The time to end partitions at when definitions are built: None for the wall clock
    (Dagster's partitions follow it by themselves) or for a clock that cannot be read now (no
    clock table yet, or a URL only known when a run starts); else the clock's time. Partitions
    built from it stay there until the code location reloads."""
    if clock.follows_wall_time or not isinstance(clock, TableClock):
        return None
    if isinstance(clock.url, dg.EnvVar):  # read when a run starts, never at load
        return None
    try:
        return clock.now()
    except (ClockUnavailable, ValueError):
        return None
