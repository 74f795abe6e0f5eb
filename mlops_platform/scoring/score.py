"""Score rows of a feature table with a model (no Dagster)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, MODEL_VERSION, SCORE
from mlops_platform.model.predict import predict
from mlops_platform.specs import ModelSpec

if TYPE_CHECKING:
    from mlops_platform.warehouse import WarehouseStore


def score_rows(model, version: str, rows: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Scores of every row (its entity key, date and event time), with the model version on
    every row: one prediction call for all of them (a day's or a month's)."""
    scored = rows[[*domain_for(spec).entity_key, EVENT_DATE, EVENT_AT]].copy()
    scored[SCORE] = predict(model, rows, spec) if len(rows) else []
    scored["model"] = spec.name
    scored[MODEL_VERSION] = version
    scored["scored_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return scored.reset_index(drop=True)


def score_day(
    model, version: str, features: pd.DataFrame, day: dt.date, spec: ModelSpec
) -> pd.DataFrame:
    """Scores of the rows of `day` only (the benchmarks score day by day)."""
    return score_rows(
        model, version, features[pd.to_datetime(features[EVENT_DATE]).dt.date == day], spec
    )


#: Feature rows one read of `score_range` holds at most (a single bigger day is one read):
#: scoring's memory follows this, not the range or the table.
SCORE_ROWS = 50_000


def score_range(
    warehouse: WarehouseStore,
    model,
    version: str,
    spec: ModelSpec,
    first: dt.date,
    end: dt.date,
    limit: int | None = None,
) -> tuple[int, int]:
    """Score the feature rows of days [`first`, `end`) into `scores.<spec>`, replacing what
    was there, a few days at a time (at most `limit` rows a read, whole days); returns the rows
    scored and the rows replaced."""
    from mlops_platform.warehouse.base import quote
    from mlops_platform.warehouse.spans import day_spans

    # `event_date` holds midnights: compared as it is (not cast), an index on it serves the
    # range (PostgreSQL), instead of a scan of the whole table for every read.
    def between(start: dt.date, stop: dt.date) -> str:
        return f"{EVENT_DATE} >= DATE '{start}' AND {EVENT_DATE} < DATE '{stop}'"

    warehouse.ensure_index("features", spec.name, EVENT_DATE)
    table = f"features.{quote(spec.name)}"
    counts = warehouse.query(
        f"SELECT CAST({EVENT_DATE} AS DATE) AS d, count(*) AS n FROM {table} "
        f"WHERE {between(first, end)} GROUP BY 1 ORDER BY 1"
    )
    pairs = zip(counts["d"], counts["n"], strict=True)
    days = [(pd.Timestamp(d).date(), int(n)) for d, n in pairs]
    rows = replaced = 0
    for start, stop in day_spans(days, first, SCORE_ROWS if limit is None else limit):
        stop = min(stop or end, end)
        where = between(start, stop)
        features = warehouse.read_table("features", spec.name, where=where)
        scored = score_rows(model, version, features, spec)
        replaced += warehouse.replace_rows("scores", spec.name, scored, where=where)
        warehouse.ensure_index("scores", spec.name, EVENT_DATE)
        rows += len(scored)
    return rows, replaced
