"""Gather the data for one day's monitoring and compute it (no Dagster)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_platform.evaluation.gate import score
from mlops_platform.features.build import KEY, LABEL
from mlops_platform.monitoring.calibration import window_is_full
from mlops_platform.monitoring.drift import SCORE, DriftResult, compute_drift
from mlops_platform.monitoring.reference import (
    DAY,
    drift_calibration,
    drift_reference,
    performance_reference,
)
from mlops_platform.monitoring.reports import report_path, report_title, save_report
from mlops_platform.monitoring.significance import performance_verdict
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import Warehouse

__all__ = ["drift_reference", "recent_scored", "recent_served", "run_drift", "run_performance"]


def recent_scored(spec: ModelSpec, day: dt.date, warehouse: Warehouse) -> pd.DataFrame:
    """Batch-scored flights of the window ending on `day`, with their features and labels."""
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    window = f"CAST(flight_date AS DATE) BETWEEN DATE '{start}' AND DATE '{day}'"
    if not warehouse.table_exists("scores", spec.name):
        raise RuntimeError(f"scores.{spec.name} does not exist: score some days first")
    scores = warehouse.read_table("scores", spec.name, where=window)
    features = warehouse.read_table("features", spec.name, where=window)
    joined = scores[[*KEY, SCORE, "model_version"]].merge(features, on=KEY, how="inner")
    if joined.empty:
        raise RuntimeError(f"no scored flights between {start} and {day}")
    return joined


def recent_served(spec: ModelSpec, day: dt.date, log_dir: str | Path | None = None):
    """Rows the serving API scored (its prediction log) in the window ending on `day`, for the
    champion or the canary: the request inputs as received, and the score returned."""
    from mlops_platform.serving.predictionlog import read_log

    if log_dir is None:
        from mlops_platform.serving.settings import ServingSettings

        log_dir = ServingSettings().log_dir
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    served = read_log(Path(log_dir) / "predictions", start, day)
    if served.empty:
        return served
    return served[[*spec.features.columns, SCORE, "model_version"]]


@dataclass
class DriftRun:
    result: DriftResult | None  # None: the window is not full yet, nothing was compared
    report_path: Path | None
    mlflow_run_id: str | None
    champion_version: str
    batch_rows: int
    served_rows: int
    seconds: float
    window_days_present: int = 0
    title: str = ""
    status: str = "ok"


def run_drift(
    spec: ModelSpec,
    day: dt.date,
    warehouse: Warehouse,
    registry: ModelRegistry,
    log_dir: str | Path | None = None,
) -> DriftRun:
    """Drift of the window ending on `day` (batch scores and the serving log) against the
    champion's reference, with calibrated thresholds; evaluated only once the window is full.
    The titled HTML report is written once and linked; MLflow gets the metrics."""
    started = time.perf_counter()
    version = registry.alias_version(spec.name, CHAMPION)
    if version is None:
        raise RuntimeError(f"{spec.name} has no champion: nothing to monitor")
    batch = recent_scored(spec, day, warehouse)
    served = recent_served(spec, day, log_dir)
    present = batch[DAY].dt.date.nunique()
    if not window_is_full(batch[DAY].dt.date.unique(), spec.drift.window_days):
        return DriftRun(
            None,
            None,
            None,
            version,
            len(batch),
            len(served),
            time.perf_counter() - started,
            present,
            status=f"window not full: {present} of {spec.drift.window_days} days scored",
        )
    reference = drift_reference(spec, version, warehouse, registry)
    calibration = drift_calibration(spec, version, reference, registry)
    current = pd.concat(
        [batch[[*spec.features.columns, SCORE, LABEL]], *([served] if len(served) else [])],
        ignore_index=True,
    )
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    title = report_title(
        spec.name,
        version,
        start,
        day,
        reference[DAY].min().date(),
        reference[DAY].max().date(),
        spec.drift.window_days,
    )
    result = compute_drift(reference, current, spec, calibration, title)
    path = save_report(result.snapshot, title, report_path(spec.name, day, version))
    mlflow = registry.fluent()
    experiment = registry.experiment_id(f"{spec.name}-monitoring")
    with mlflow.start_run(experiment_id=experiment, run_name=f"drift-{day}") as run:
        # The report itself stays one file (linked from the asset), not a second copy here.
        mlflow.set_tags(
            {
                "monitored_day": str(day),
                "champion_version": version,
                "report": str(path),
                "title": title[:500],
            }
        )
        mlflow.log_metrics(
            {
                "drift_share": result.share,
                "prediction_drift": result.prediction_drift,
                **(
                    {"label_shift": result.label_shift}
                    if result.label_shift == result.label_shift
                    else {}
                ),
                "batch_rows": len(batch),
                "served_rows": len(served),
                **{f"psi_{k}": v for k, v in result.per_feature.items()},
            }
        )
    return DriftRun(
        result,
        path,
        run.info.run_id,
        version,
        len(batch),
        len(served),
        time.perf_counter() - started,
        present,
        title,
    )


def run_performance(
    spec: ModelSpec, day: dt.date, warehouse: Warehouse, registry: ModelRegistry
) -> dict:
    """Quality of the scores already served, on rows whose label has arrived, against the
    champion's held-out rows: the drop with its bootstrap confidence interval."""
    recent = recent_scored(spec, day, warehouse)
    labelled = recent[recent[LABEL].notna()]
    version = registry.alias_version(spec.name, CHAMPION)
    reference = performance_reference(spec, version, warehouse, registry)
    metric = spec.gate.primary_metric
    verdict = performance_verdict(
        metric,
        labelled[LABEL].to_numpy(),
        labelled[SCORE].to_numpy(),
        reference[LABEL].to_numpy(),
        reference[SCORE].to_numpy(),
        min_rows=spec.drift.min_labelled_rows,
        min_drop=spec.drift.performance_drop,
        confidence=spec.drift.confidence,
        samples=spec.drift.bootstrap_samples,
    )
    common = {
        "labelled_rows": len(labelled),
        "scored_rows": len(recent),
        "champion_version": version,
        "baseline": verdict.reference,
        "performance_drop": verdict.drop,
        "drop_ci_low": verdict.low,
        "drop_ci_high": verdict.high,
        "confidence": verdict.confidence,
        "min_labelled_rows": spec.drift.min_labelled_rows,
        "significant_drop": verdict.significant,
        "verdict": verdict.describe(),
    }
    if verdict.status != "ok":
        # Too few outcomes yet (the first days after scoring starts): say so, judge nothing.
        return {"status": verdict.status, metric: float("nan"), **common}
    metrics = score(spec, labelled[LABEL].to_numpy(), labelled[SCORE].to_numpy())
    return {"status": "ok", **{k: float(v) for k, v in metrics.items()}, **common}
