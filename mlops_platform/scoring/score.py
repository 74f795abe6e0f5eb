"""Score rows of a feature table with a model (no Dagster)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, MODEL_VERSION, SCORE
from mlops_platform.model.predict import predict
from mlops_platform.specs import ModelSpec


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
