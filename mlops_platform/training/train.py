"""Fit a spec's model (plain scikit-learn; no Dagster, no MLflow).

The rows come from the time split (`model/split.py`). Categorical features are ordinal-encoded
(unknown and missing values become NaN) and handled natively by HistGradientBoosting as
categories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_platform.model.columns import LABEL
from mlops_platform.model.input import model_input
from mlops_platform.specs import ModelSpec
from mlops_platform.training.params import Hyperparameters


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
