"""Tables of the weather station's database.

`daily_summary` is what a consumer ingests: one row per station and day, published when the day's
summary is reported, with `rain` empty until the rain report arrives (the next morning), which
stamps `updated_at` again. The `replay_*` tables belong to the replay clock and are never ingested.
"""

from __future__ import annotations

import sqlalchemy as sa

from simulator.rainfall.data import MEASUREMENTS

metadata = sa.MetaData()

KEY = ("station", "obs_date")


def _day_columns() -> list[sa.Column]:
    return [
        sa.Column("station", sa.String(32), primary_key=True),
        sa.Column("obs_date", sa.Date, primary_key=True),
        sa.Column("reported_at", sa.DateTime, nullable=False, index=True),
        *[sa.Column(name, sa.Float) for name in MEASUREMENTS],
    ]


daily_summary = sa.Table(
    "daily_summary",
    metadata,
    *_day_columns(),
    sa.Column("rain", sa.Integer),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

#: Every day as it will happen: when its summary is reported and when its rain report arrives.
replay_days = sa.Table(
    "replay_days",
    metadata,
    *_day_columns(),
    sa.Column("rain", sa.Integer, nullable=False),
    sa.Column("rain_reported_at", sa.DateTime, nullable=False, index=True),
)

replay_clock = sa.Table(
    "replay_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("now", sa.DateTime, nullable=False),
)

INGESTED_TABLES = ("daily_summary",)
