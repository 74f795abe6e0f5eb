"""Tables of the flight-ops database, as an airline operations system would hold them.

Every table a consumer may ingest has an `updated_at` column, because rows change after insert
(a flight's outcome arrives after it lands). The `replay_*` tables belong to the replay clock
(the simulator behind the source) and are never ingested.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Columns of a flight known only once it has flown (the label and the leakage columns).
OUTCOME_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")

FLIGHT_KEY = ("year", "month", "day", "carrier", "flight", "origin")


def _flight_columns() -> list[sa.Column]:
    return [
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("dep_time", sa.Float),
        sa.Column("sched_dep_time", sa.Integer, nullable=False),
        sa.Column("dep_delay", sa.Float),
        sa.Column("arr_time", sa.Float),
        sa.Column("sched_arr_time", sa.Integer, nullable=False),
        sa.Column("arr_delay", sa.Float),
        sa.Column("carrier", sa.String(8)),
        sa.Column("flight", sa.Integer, nullable=False),
        sa.Column("tailnum", sa.String(16)),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("dest", sa.String(8), nullable=False),
        sa.Column("air_time", sa.Float),
        sa.Column("distance", sa.Float, nullable=False),
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("minute", sa.Integer, nullable=False),
        sa.Column("time_hour", sa.DateTime, nullable=False),
    ]


flights = sa.Table(
    "flights",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_flight_columns(),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

planes = sa.Table(
    "planes",
    metadata,
    sa.Column("tailnum", sa.String(16), primary_key=True),
    sa.Column("year", sa.Float),
    sa.Column("type", sa.String(64)),
    sa.Column("manufacturer", sa.String(64)),
    sa.Column("model", sa.String(64)),
    sa.Column("engines", sa.Integer),
    sa.Column("seats", sa.Integer),
    sa.Column("speed", sa.Float),
    sa.Column("engine", sa.String(32)),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

airlines = sa.Table(
    "airlines",
    metadata,
    sa.Column("carrier", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

airports = sa.Table(
    "airports",
    metadata,
    sa.Column("faa", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(128)),
    sa.Column("lat", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("alt", sa.Float),
    sa.Column("tz", sa.Float),
    sa.Column("dst", sa.String(4)),
    sa.Column("tzone", sa.String(64)),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

#: Hourly observations owned by the weather service; published through its HTTP feed only.
weather_observations = sa.Table(
    "weather_observations",
    metadata,
    sa.Column("origin", sa.String(8), primary_key=True),
    sa.Column("time_hour", sa.DateTime, primary_key=True),
    sa.Column("year", sa.Integer),
    sa.Column("month", sa.Integer),
    sa.Column("day", sa.Integer),
    sa.Column("hour", sa.Integer),
    sa.Column("temp", sa.Float),
    sa.Column("dewp", sa.Float),
    sa.Column("humid", sa.Float),
    sa.Column("wind_dir", sa.Float),
    sa.Column("wind_speed", sa.Float),
    sa.Column("wind_gust", sa.Float),
    sa.Column("precip", sa.Float),
    sa.Column("pressure", sa.Float),
    sa.Column("visib", sa.Float),
)

#: The whole year as it will happen, with when each flight is published and when it lands.
replay_schedule = sa.Table(
    "replay_schedule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    *_flight_columns(),
    sa.Column("sched_date", sa.Date, nullable=False, index=True),
    sa.Column("outcome_status", sa.String(16), nullable=False),
    sa.Column("outcome_at", sa.DateTime, nullable=False, index=True),
)

replay_clock = sa.Table(
    "replay_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("now", sa.DateTime, nullable=False),
    sa.Column("released_through", sa.Date, nullable=False),
)

INGESTED_TABLES = ("flights", "planes", "airlines", "airports")
