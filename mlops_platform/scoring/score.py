"""Score one day's flights with a model (no Dagster)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops_platform.features.build import KEY
from mlops_platform.specs import ModelSpec
from mlops_platform.training.train import predict


def score_day(
    model, version: str, features: pd.DataFrame, day: dt.date, spec: ModelSpec
) -> pd.DataFrame:
    """Scores of every flight scheduled on `day`, with the model version on every row."""
    flights = features[features["flight_date"].dt.date == day]
    scored = flights[[*KEY, "flight_date", "sched_dep_at"]].copy()
    scored["score"] = predict(model, flights, spec) if len(flights) else []
    scored["model"] = spec.name
    scored["model_version"] = version
    scored["scored_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return scored.reset_index(drop=True)
