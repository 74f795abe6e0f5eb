"""Score models on the held-out window and decide whether a challenger may be promoted.

Plain functions: `evaluate` scores one model (overall, per slice, latency); `decide` applies the
spec's gate to the challenger's evaluation and, when there is one, the champion's on the same
rows. An evaluation that cannot run raises; it never reports a made-up score.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_platform.features.build import LABEL
from mlops_platform.specs import ModelSpec
from mlops_platform.training.train import model_input, predict

LOWER_IS_BETTER = {"brier", "log_loss", "mae", "rmse"}


@dataclass
class Evaluation:
    version: str
    rows: int
    metrics: dict[str, float]
    slices: dict[str, float]  # "origin=JFK" -> primary metric
    slice_rows: dict[str, int]
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass
class GateResult:
    passed: bool
    checks: list[GateCheck]
    challenger: Evaluation
    champion: Evaluation | None

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]


def score(spec: ModelSpec, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
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


def slice_keys(spec: ModelSpec, holdout: pd.DataFrame) -> list[tuple[str, str]]:
    """The slices the gate looks at: the largest values of each slice column, if big enough."""
    keys = []
    for column in spec.gate.slice_columns:
        counts = holdout[column].value_counts()
        counts = counts[counts >= spec.gate.min_slice_rows].head(spec.gate.top_slices)
        keys += [(column, str(value)) for value in counts.index]
    return keys


def measure_latency(model, holdout: pd.DataFrame, spec: ModelSpec) -> dict[str, float]:
    """Median wall time of scoring one row and 1,000 rows (model input prepared per call)."""
    one = holdout.head(1)
    thousand = holdout.sample(n=1000, replace=len(holdout) < 1000, random_state=0)
    timings = {}
    for label, frame, repeats in (("single_row_ms", one, 25), ("rows_1000_ms", thousand, 7)):
        predict(model, frame, spec)  # warm-up
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict(model, frame, spec)
            samples.append((time.perf_counter() - started) * 1000)
        timings[label] = statistics.median(samples)
    return timings


def evaluate(
    model, version: str, holdout: pd.DataFrame, spec: ModelSpec, latency: bool = True
) -> Evaluation:
    prediction = predict(model, holdout, spec)
    y = holdout[LABEL].to_numpy()
    slices, slice_rows = {}, {}
    for column, value in slice_keys(spec, holdout):
        mask = (holdout[column].astype(str) == value).to_numpy()
        slices[f"{column}={value}"] = score(spec, y[mask], prediction[mask])[
            spec.gate.primary_metric
        ]
        slice_rows[f"{column}={value}"] = int(mask.sum())
    return Evaluation(
        version=version,
        rows=len(holdout),
        metrics=score(spec, y, prediction),
        slices=slices,
        slice_rows=slice_rows,
        latency_ms=measure_latency(model, holdout, spec) if latency else {},
    )


def _worse_by(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is (positive = worse), in the metric's own units."""
    return challenger - champion if metric in LOWER_IS_BETTER else champion - challenger


def decide(spec: ModelSpec, challenger: Evaluation, champion: Evaluation | None) -> GateResult:
    gate, checks = spec.gate, []
    for metric, floor in gate.floors.items():
        value = challenger.metrics[metric]
        ok = (floor.min is None or value >= floor.min) and (floor.max is None or value <= floor.max)
        bound = f">= {floor.min}" if floor.min is not None else ""
        bound += f"{' and ' if bound and floor.max is not None else ''}"
        bound += f"<= {floor.max}" if floor.max is not None else ""
        checks.append(GateCheck(f"floor:{metric}", ok, f"{value:.4f} (must be {bound})"))

    primary = gate.primary_metric
    if champion is None:
        checks.append(GateCheck("vs_champion", True, "no champion yet: the floors decide"))
    else:
        worse = _worse_by(primary, challenger.metrics[primary], champion.metrics[primary])
        checks.append(
            GateCheck(
                "vs_champion",
                worse <= gate.champion_tolerance,
                f"{primary} {challenger.metrics[primary]:.4f} vs champion v{champion.version} "
                f"{champion.metrics[primary]:.4f} (may be worse by {gate.champion_tolerance})",
            )
        )
        for key, value in challenger.slices.items():
            if key not in champion.slices:
                continue
            worse = _worse_by(primary, value, champion.slices[key])
            checks.append(
                GateCheck(
                    f"slice:{key}",
                    worse <= gate.slice_tolerance,
                    f"{primary} {value:.4f} vs champion {champion.slices[key]:.4f} "
                    f"(may be worse by {gate.slice_tolerance})",
                )
            )

    single = challenger.latency_ms.get("single_row_ms")
    batch = challenger.latency_ms.get("rows_1000_ms")
    if single is None or batch is None:
        raise ValueError("latency was not measured: the gate cannot decide")
    checks.append(
        GateCheck(
            "latency:single_row",
            single <= gate.latency_single_row_ms,
            f"{single:.1f} ms (budget {gate.latency_single_row_ms} ms)",
        )
    )
    checks.append(
        GateCheck(
            "latency:1000_rows",
            batch <= gate.latency_1000_rows_ms,
            f"{batch:.1f} ms (budget {gate.latency_1000_rows_ms} ms)",
        )
    )
    return GateResult(all(c.passed for c in checks), checks, challenger, champion)


def check_inputs(holdout: pd.DataFrame, spec: ModelSpec) -> None:
    """Fail loudly if the held-out rows cannot be scored (missing columns, no labels)."""
    model_input(holdout.head(1), spec)
    if holdout[LABEL].isna().any():
        raise ValueError("held-out rows must all be labelled")
