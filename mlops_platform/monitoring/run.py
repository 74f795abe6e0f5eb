"""Gather the data for one day's monitoring and compute it (no Dagster)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.model.columns import EVENT_DATE, LABEL, MODEL_VERSION, SCORE
from mlops_platform.model.metrics import compute_metrics, worse_by
from mlops_platform.model.predict import predict
from mlops_platform.model.split import labelled, training_rows_of
from mlops_platform.model.version import GateSummary, VersionRecord
from mlops_platform.monitoring.drift import DriftResult, compute_drift
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.settings import data_dir
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import Warehouse

#: The champion's training rows are sampled down to this for the drift reference.
REFERENCE_ROWS = 50_000


def recent_scored(spec: ModelSpec, day: dt.date, warehouse: Warehouse) -> pd.DataFrame:
    """Batch-scored rows of the window ending on `day`, with their features and labels."""
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    window = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{day}'"
    if not warehouse.table_exists("scores", spec.name):
        raise RuntimeError(f"scores.{spec.name} does not exist: score some days first")
    scores = warehouse.read_table("scores", spec.name, where=window)
    features = warehouse.read_table("features", spec.name, where=window)
    key = list(domain_for(spec).entity_key)
    joined = scores[[*key, SCORE, MODEL_VERSION]].merge(features, on=key, how="inner")
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
    return served[[*spec.features.columns, SCORE, MODEL_VERSION]]


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
    split = VersionRecord.from_tags(registry.version_tags(spec.name, version)).split
    features = warehouse.read_table(
        "features",
        spec.name,
        where=f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{split.train_start}' "
        f"AND DATE '{split.train_end}'",
    )
    reference = training_rows_of(features, split)
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


#: Fewer labelled rows than this in the window and performance is not scored yet.
MIN_LABELLED_ROWS = 200


@dataclass(frozen=True)
class Performance:
    """The champion's quality on the window's rows whose label has arrived."""

    status: str  # "ok" | "too few labelled rows yet"
    champion_version: str | None
    labelled_rows: int
    scored_rows: int
    baseline: float  # the primary metric on its gate's held-out window (NaN if unknown)
    metrics: dict[str, float]  # empty until enough rows are labelled
    primary_metric: str

    @property
    def primary(self) -> float:
        return self.metrics.get(self.primary_metric, float("nan"))

    @property
    def drop(self) -> float:
        """How much worse than the baseline (positive = worse; NaN if either is unknown)."""
        if self.primary != self.primary or self.baseline != self.baseline:
            return float("nan")
        return worse_by(self.primary_metric, self.primary, self.baseline)

    def metadata(self) -> dict:
        """Asset metadata (the keys the UI plots and the retraining sensor reads)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("metrics", "primary_metric")}
        return {
            **out,
            **self.metrics,
            self.primary_metric: self.primary,
            "performance_drop": self.drop,
        }


def run_performance(
    spec: ModelSpec, day: dt.date, warehouse: Warehouse, registry: ModelRegistry
) -> Performance:
    """Quality of the scores already served, on rows whose label has arrived."""
    recent = recent_scored(spec, day, warehouse)
    known = labelled(recent)
    version = registry.alias_version(spec.name, CHAMPION)
    gate = GateSummary.from_tags(registry.version_tags(spec.name, version))
    primary = spec.gate.primary_metric
    baseline = gate.metrics.get(primary) if gate is not None else None
    metrics = {}
    # Too few outcomes yet (the first days after scoring starts): say so, score nothing.
    if len(known) >= MIN_LABELLED_ROWS:
        metrics = compute_metrics(spec, known[LABEL].to_numpy(), known[SCORE].to_numpy())
    return Performance(
        status="ok" if metrics else "too few labelled rows yet",
        champion_version=version,
        labelled_rows=len(known),
        scored_rows=len(recent),
        baseline=float(baseline) if baseline is not None else float("nan"),
        metrics={k: float(v) for k, v in metrics.items()},
        primary_metric=primary,
    )
