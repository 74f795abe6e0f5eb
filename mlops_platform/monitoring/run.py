"""Gather the data for one day's monitoring and compute it (no Dagster)."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.evaluation.gate import score
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.monitoring.drift import SCORE, DriftResult, compute_drift
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.settings import data_dir
from mlops_platform.specs import ModelSpec
from mlops_platform.training.train import TimeSplit, predict, rows_between
from mlops_platform.warehouse import Warehouse

#: The champion's training rows are sampled down to this for the drift reference.
REFERENCE_ROWS = 50_000


def recent_scored(spec: ModelSpec, day: dt.date, warehouse: Warehouse) -> pd.DataFrame:
    """Batch-scored rows of the window ending on `day`, with their features and labels."""
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    window = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{day}'"
    key = list(domain_for(spec).entity_key)
    if not warehouse.table_exists("scores", spec.name):
        raise RuntimeError(f"scores.{spec.name} does not exist: score some days first")
    scores = warehouse.read_table("scores", spec.name, where=window)
    features = warehouse.read_table("features", spec.name, where=window)
    joined = scores[[*key, SCORE, "model_version"]].merge(features, on=key, how="inner")
    if joined.empty:
        raise RuntimeError(f"no scored rows between {start} and {day}")
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


def drift_reference(
    spec: ModelSpec, version: str, warehouse: Warehouse, registry: ModelRegistry
) -> pd.DataFrame:
    """A sample of the champion's training rows, scored by the champion.

    It depends only on the model version, so it is computed once per version and kept in
    `<data dir>/monitoring/<spec>/` (named by the MLflow run, which no registry reset reuses)."""
    run_id = registry.run_id_of(spec.name, version)
    cache = data_dir() / "monitoring" / spec.name / f"reference-v{version}-{run_id}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    split = TimeSplit.from_tags(registry.version_tags(spec.name, version))
    features = warehouse.read_table(
        "features",
        spec.name,
        where=f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{split.train_start}' "
        f"AND DATE '{split.train_end}'",
    )
    reference = rows_between(features[features[LABEL].notna()], split.train_start, split.train_end)
    reference = reference.sample(n=min(len(reference), REFERENCE_ROWS), random_state=0)
    reference = reference.assign(
        **{SCORE: predict(registry.load_verified(spec.name, version), reference, spec)}
    )
    reference = reference[[*spec.features.columns, SCORE]].reset_index(drop=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(cache)
    return reference


@dataclass
class DriftRun:
    result: DriftResult
    report_path: Path
    mlflow_run_id: str
    champion_version: str
    batch_rows: int
    served_rows: int
    seconds: float


def run_drift(
    spec: ModelSpec,
    day: dt.date,
    warehouse: Warehouse,
    registry: ModelRegistry,
    log_dir: str | Path | None = None,
) -> DriftRun:
    """Drift of the window ending on `day` (batch scores and the serving log) against the
    champion's training reference; the HTML report goes to a file and to MLflow."""
    started = time.perf_counter()
    version = registry.alias_version(spec.name, CHAMPION)
    if version is None:
        raise RuntimeError(f"{spec.name} has no champion: nothing to monitor")
    reference = drift_reference(spec, version, warehouse, registry)
    batch = recent_scored(spec, day, warehouse)
    served = recent_served(spec, day, log_dir)
    current = pd.concat(
        [batch[[*spec.features.columns, SCORE]], *([served] if len(served) else [])],
        ignore_index=True,
    )
    result = compute_drift(reference, current, spec)

    folder = data_dir() / "reports" / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"drift-{day}.html"
    result.snapshot.save_html(str(path))
    mlflow = registry.fluent()
    experiment = registry.experiment_id(f"{spec.name}-monitoring")
    with mlflow.start_run(experiment_id=experiment, run_name=f"drift-{day}") as run:
        mlflow.set_tags({"monitored_day": str(day), "champion_version": version})
        mlflow.log_metrics(
            {
                "drift_share": result.share,
                "prediction_drift": result.prediction_drift,
                "batch_rows": len(batch),
                "served_rows": len(served),
                **{f"psi_{k}": v for k, v in result.per_feature.items()},
            }
        )
        mlflow.log_artifact(str(path), artifact_path="drift")
    return DriftRun(
        result,
        path,
        run.info.run_id,
        version,
        len(batch),
        len(served),
        time.perf_counter() - started,
    )


def run_performance(
    spec: ModelSpec, day: dt.date, warehouse: Warehouse, registry: ModelRegistry
) -> dict:
    """Quality of the scores already served, on rows whose label has arrived."""
    recent = recent_scored(spec, day, warehouse)
    labelled = recent[recent[LABEL].notna()]
    version = registry.alias_version(spec.name, CHAMPION)
    summary = json.loads(registry.version_tags(spec.name, version).get("gate_summary", "{}"))
    baseline = (summary.get("metrics") or {}).get(spec.gate.primary_metric)
    if len(labelled) < 200:
        # Too few outcomes yet (the first days after scoring starts): say so, score nothing.
        return {
            "labelled_rows": len(labelled),
            "scored_rows": len(recent),
            "champion_version": version,
            "status": "too few labelled rows yet",
            spec.gate.primary_metric: float("nan"),
            "performance_drop": float("nan"),
            "baseline": float(baseline) if baseline is not None else float("nan"),
        }
    metrics = score(spec, labelled[LABEL].to_numpy(), labelled[SCORE].to_numpy())
    primary = metrics[spec.gate.primary_metric]
    drop = None
    if baseline is not None:
        drop = baseline - primary if spec.higher_is_better else primary - baseline
    return {
        "status": "ok",
        **{k: float(v) for k, v in metrics.items()},
        "labelled_rows": len(labelled),
        "scored_rows": len(recent),
        "champion_version": version,
        "baseline": float(baseline) if baseline is not None else float("nan"),
        "performance_drop": float(drop) if drop is not None else float("nan"),
    }
