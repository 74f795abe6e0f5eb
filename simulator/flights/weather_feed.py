"""The hourly weather feed: a small HTTP API over the weather service's observations.

It behaves like an external weather API: observations are published only once the replay clock
has passed their hour, and the client pages through them with an opaque cursor:

    GET /v1/observations?since=2013-01-01T00:00:00&limit=1000
    -> {"observations": [...], "next_cursor": "..." | null}
    GET /v1/observations?cursor=<next_cursor>

`since` (inclusive, ISO time) is what an incremental client sends; `cursor` continues a listing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import sqlalchemy as sa

from mlops_platform.http_server import BackgroundServer
from simulator.flights import tables
from simulator.flights.replay import read_clock

MAX_LIMIT = 5000


def encode_cursor(since: dt.datetime, after: tuple[dt.datetime, str] | None) -> str:
    payload = {"since": since.isoformat(), "after": after and [after[0].isoformat(), after[1]]}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, tuple[dt.datetime, str] | None]:
    payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    after = payload["after"]
    return (
        dt.datetime.fromisoformat(payload["since"]),
        after and (dt.datetime.fromisoformat(after[0]), after[1]),
    )


def create_app(source_url: str):
    """The FastAPI app of the weather feed, reading observations from the source database."""
    from fastapi import FastAPI, HTTPException, Query, Response

    app = FastAPI(title="Weather feed (replayed 2013 NYC hourly weather)")
    # No pooled connection: the server outlives runs (`http_server.shared_server`), and a
    # source database re-created at the same path must be read as it is now.
    engine = sa.create_engine(source_url, future=True, poolclass=sa.pool.NullPool)
    obs = tables.weather_observations

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "clock": read_clock(source_url).now.isoformat()}

    @app.get("/v1/observations")
    def observations(
        since: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    ) -> Response:
        after = None
        if cursor:
            try:
                since, after = decode_cursor(cursor)
            except (ValueError, KeyError, TypeError) as exc:
                raise HTTPException(400, f"invalid cursor: {exc}") from exc
        since = (since or dt.datetime(1970, 1, 1)).replace(tzinfo=None)
        now = read_clock(source_url).now
        query = sa.select(obs).where(obs.c.time_hour >= since, obs.c.time_hour <= now)
        if after:
            query = query.where(
                sa.or_(
                    obs.c.time_hour > after[0],
                    sa.and_(obs.c.time_hour == after[0], obs.c.origin > after[1]),
                )
            )
        query = query.order_by(obs.c.time_hour, obs.c.origin).limit(limit + 1)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = page[-1]
            next_cursor = encode_cursor(since, (last["time_hour"], last["origin"]))
        for row in page:
            row["time_hour"] = row["time_hour"].isoformat()
        # Serialised directly: FastAPI's generic encoder costs ~5x more on 5,000-row pages.
        body = json.dumps({"observations": page, "next_cursor": next_cursor})
        return Response(content=body, media_type="application/json")

    return app


class FeedServer(BackgroundServer):
    """The weather feed with uvicorn in a background thread on loopback (the landing keeps
    one per process and source database: `SourceFeed.serve`)."""

    def __init__(self, source_url: str, port: int | None = None) -> None:
        super().__init__(create_app(source_url), port)
