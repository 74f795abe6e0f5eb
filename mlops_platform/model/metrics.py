"""Every metric the gate and monitoring compute, and which direction is better (one place)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlops_platform.specs import ModelSpec  # typing only: the model layer sits below specs


#: Metrics where a smaller value is the better model.
LOWER_IS_BETTER = frozenset({"brier", "log_loss", "mae", "rmse"})


def compute_metrics(spec: ModelSpec, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The spec's task metrics of `prediction` against `y`; raises ValueError when they are
    undefined (no rows, a single class), never a made-up value."""
    from sklearn import metrics

    if len(y) == 0:
        raise ValueError("cannot score on zero rows")
    if spec.task == "classification":
        if len(np.unique(y)) < 2:
            raise ValueError("held-out rows have a single class: ROC AUC is undefined")
        clipped = np.clip(prediction, 1e-6, 1 - 1e-6)
        return {
            "roc_auc": float(metrics.roc_auc_score(y, prediction)),
            "brier": float(metrics.brier_score_loss(y, prediction)),
            "log_loss": float(metrics.log_loss(y, clipped)),
            "positive_rate": float(np.mean(y)),
            "mean_prediction": float(np.mean(prediction)),
        }
    return {
        "mae": float(metrics.mean_absolute_error(y, prediction)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, prediction))),
        "r2": float(metrics.r2_score(y, prediction)),
    }


def primary_metric(spec: ModelSpec, y: np.ndarray, prediction: np.ndarray) -> float:
    return compute_metrics(spec, y, prediction)[spec.gate.primary_metric]


def worse_by(metric: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference` (positive = worse), in the metric's units."""
    return value - reference if metric in LOWER_IS_BETTER else reference - value
