"""Scoring a frame with a fitted model: the one definition every stage uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_platform.model.input import model_input

if TYPE_CHECKING:
    from mlops_platform.specs import ModelSpec  # typing only: the model layer sits below specs


def predict(model, frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Probability of the positive class (classification) or the predicted value. `model` is
    a fitted pipeline, or its `FastScorer` (the same numbers, tested; batch scoring uses it)."""
    from mlops_platform.model.scorer import FastScorer

    x = model_input(frame, spec)
    if isinstance(model, FastScorer):
        return model.score(model.frame_matrix(x))
    if spec.task == "classification":
        return model.predict_proba(x)[:, 1]
    return model.predict(x)
