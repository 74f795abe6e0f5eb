"""Fit a spec's model on a time split (plain scikit-learn; no Dagster, no MLflow).

Only rows whose label has arrived are training rows, and the split is by time: the most recent
complete `holdout_days` are held out for the evaluation gate, the `training_window_days` before
them are the training set. Categorical features are ordinal-encoded (unknown and missing values
become NaN) and handled natively by HistGradientBoosting as categories.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.specs import ModelSpec
from mlops_platform.training.params import Hyperparameters


@dataclass(frozen=True)
class TimeSplit:
    train_start: dt.date
    train_end: dt.date  # inclusive
    holdout_start: dt.date
    holdout_end: dt.date  # inclusive

    def as_tags(self) -> dict[str, str]:
        return {f"window.{k}": v.isoformat() for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> TimeSplit:
        try:
            return cls(
                **{
                    k: dt.date.fromisoformat(tags[f"window.{k}"])
                    for k in ("train_start", "train_end", "holdout_start", "holdout_end")
                }
            )
        except KeyError as exc:
            raise ValueError(f"model version has no recorded time window ({exc})") from exc


def split_by_time(
    table: pd.DataFrame, spec: ModelSpec
) -> tuple[pd.DataFrame, pd.DataFrame, TimeSplit]:
    """(train, holdout, split) from a feature table; raises ValueError if there is too little."""
    labelled = table[table[LABEL].notna()]
    if labelled.empty:
        raise ValueError("no labelled rows yet: outcomes arrive after the events")
    # The newest day is only partly labelled (its late outcomes still to come): leave it out.
    last_complete = labelled[EVENT_DATE].max().date() - dt.timedelta(days=1)
    holdout_start = last_complete - dt.timedelta(days=spec.holdout_days - 1)
    train_end = holdout_start - dt.timedelta(days=1)
    train_start = train_end - dt.timedelta(days=spec.training_window_days - 1)
    split = TimeSplit(train_start, train_end, holdout_start, last_complete)
    train = rows_between(labelled, split.train_start, split.train_end)
    holdout = rows_between(labelled, split.holdout_start, split.holdout_end)
    if len(train) < 1000 or len(holdout) < 200:
        raise ValueError(
            f"too little labelled data for {spec.name}: {len(train)} training rows "
            f"({train_start}..{train_end}) and {len(holdout)} held out "
            f"({holdout_start}..{last_complete}); need 1000 and 200"
        )
    return train, holdout, split


def rows_between(table: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    dates = table[EVENT_DATE].dt.date
    return table[(dates >= start) & (dates <= end)]


def build_estimator(spec: ModelSpec, params: Hyperparameters):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = spec.features.categorical
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    dtype=np.float64,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    estimator = (
        HistGradientBoostingClassifier
        if spec.task == "classification"
        else HistGradientBoostingRegressor
    )(
        categorical_features=list(range(len(categorical))),
        early_stopping=False,
        **params.as_dict(),
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def model_input(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The columns the model takes, in spec order; categoricals as strings (NaN if missing)."""
    missing = [c for c in spec.features.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"input lacks feature columns {missing}")
    x = frame[spec.features.columns].copy()
    for column in spec.features.categorical:
        x[column] = x[column].astype(object).where(x[column].notna(), np.nan)
    for column in spec.features.numeric:
        x[column] = pd.to_numeric(x[column], errors="raise").astype(float)
    return x


def fit(
    spec: ModelSpec, train: pd.DataFrame, params: Hyperparameters, shuffle_labels: bool = False
):
    """Fit the spec's pipeline. `shuffle_labels` is a drill: a model that learnt nothing."""
    y = train[LABEL].to_numpy()
    if shuffle_labels:
        y = np.random.default_rng(params.random_state).permutation(y)
    model = build_estimator(spec, params)
    model.fit(model_input(train, spec), y)
    return model


def predict(model, frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Probability of the positive class (classification) or the predicted value."""
    x = model_input(frame, spec)
    if spec.task == "classification":
        return model.predict_proba(x)[:, 1]
    return model.predict(x)


def data_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the exact rows and columns (order-sensitive), to tie a model to its data."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()
