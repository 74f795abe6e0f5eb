"""Gather the data for one day's monitoring and compute it (no Dagster)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, LABEL, MODEL_VERSION, SCORE
from mlops_platform.model.metrics import compute_metrics
from mlops_platform.model.split import TimeSplit, labelled
from mlops_platform.model.version import GateSummary
from mlops_platform.monitoring.drift import DriftResult, compute_drift
from mlops_platform.monitoring.reference import (
    DAY,
    drift_calibration,
    drift_reference,
    performance_reference,
)
from mlops_platform.monitoring.reports import report_path, report_title, save_report
from mlops_platform.monitoring.significance import days_of, performance_verdict
from mlops_platform.monitoring.triggers import Pace, pace_of
from mlops_platform.registry.mlflow_ui import log_live_performance
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import WarehouseStore as Warehouse
from mlops_platform.warehouse.base import quote

__all__ = ["drift_reference", "recent_scored", "recent_served", "run_drift", "run_performance"]


def champion_pace(spec: ModelSpec, registry: ModelRegistry, version: str) -> Pace | None:
    """The pace of the champion's line (`triggers.Pace`), from the recorded gate summaries of
    its newest `drift.pace_comparisons` gate comparisons, pooled: its own promotion's gain
    over the model it replaced, its predecessors', and those of challengers rejected against
    any of them, each over the days between the two models' training data ends. Versions are
    read newest first, so a rejection after the champion's promotion counts first. None for a
    first model with no comparison yet, or when the spec's age limit does not adapt
    (`drift.age_loss_budget`), so nothing more is read from the registry."""
    if spec.drift.age_loss_budget is None:
        return None
    line, paces, metric = {str(version)}, [], spec.gate.primary_metric
    # Every version's tags in one registry search, rather than one read per version.
    versions = registry.all_version_tags(spec.name)
    newest = max((int(v) for v in versions), default=int(version))
    for number in range(newest, 0, -1):
        if len(paces) >= spec.drift.pace_comparisons:
            break
        tags = versions.get(str(number), {})
        summary = GateSummary.from_tags(tags)
        if summary is None or summary.champion is None:
            if str(number) in line:  # the line's first model: nothing older belongs to it
                break
            continue
        if str(number) in line:
            line.add(str(summary.champion))
        elif str(summary.champion) not in line:
            continue  # compared with a model of no concern to this champion
        if str(summary.champion) not in versions:
            raise ValueError(
                f"{spec.name} v{number}: its gate summary names champion v{summary.champion}, "
                "which the registry does not hold"
            )
        previous = TimeSplit.from_tags(versions[str(summary.champion)])
        days = (TimeSplit.from_tags(tags).train_end - previous.train_end).days
        paces.append(
            pace_of(summary.metrics, summary.champion_metrics, metric, spec.higher_is_better, days)
        )
    return Pace.pooled(paces)


def recent_scored(spec: ModelSpec, day: dt.date, warehouse: Warehouse) -> pd.DataFrame:
    """Batch-scored rows of the window ending on `day`, with their features and labels."""
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    if not warehouse.table_exists("scores", spec.name):
        raise RuntimeError(f"scores.{spec.name} does not exist: score some days first")
    window = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{day}'"
    key = ", ".join(quote(c) for c in domain_for(spec).entity_key)
    # One join in the warehouse (USING: the key once, then the scores', then the features'
    # columns), instead of reading both windows whole and merging them in pandas; in the
    # feature table's order, so the bootstrap of the performance check stays reproducible.
    joined = warehouse.query(
        f"SELECT * FROM (SELECT {key}, {SCORE}, {MODEL_VERSION} FROM scores.{quote(spec.name)} "
        f"WHERE {window}) s JOIN (SELECT * FROM features.{quote(spec.name)} WHERE {window}) f "
        f"USING ({key}) ORDER BY {EVENT_AT}, {key}"
    )
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


def window_covered(first_scored: dt.date | None, start: dt.date) -> bool:
    """A window is judged once scoring covers all of it: the first day ever scored is on or
    before the window's first day. Days missing inside it (a quarantined row of a domain with
    one row a day, a period given up after its retries) leave a gap, not a window that never
    fills; a window reaching before the first scored day is not judged (no one-day "week")."""
    return first_scored is not None and first_scored <= start


def first_scored_day(spec: ModelSpec, warehouse: Warehouse) -> dt.date | None:
    """The earliest day in `scores.<spec>`, or None."""
    first = warehouse.query(
        f"SELECT min(CAST({EVENT_DATE} AS DATE)) AS first FROM scores.{spec.name}"
    )["first"].iloc[0]
    if first is None or first != first:  # NULL comes back as None or NaT
        return None
    return pd.Timestamp(first).date()


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
    #: The last day the champion learnt from (its age, for `drift.max_model_age_days`).
    champion_trained_to: str = ""
    #: What its promotion showed of the world's pace (for `drift.age_loss_budget`).
    champion_pace: Pace | None = None


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
    trained_to = str(TimeSplit.from_tags(registry.version_tags(spec.name, version)).train_end)
    pace = champion_pace(spec, registry, version)
    batch = recent_scored(spec, day, warehouse)
    served = recent_served(spec, day, log_dir)
    present = batch[DAY].dt.date.nunique()
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    if not window_covered(first_scored_day(spec, warehouse), start):
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
            champion_trained_to=trained_to,
            champion_pace=pace,
        )
    reference = drift_reference(spec, version, warehouse, registry)
    calibration = drift_calibration(spec, version, reference, registry)
    current = pd.concat(
        [batch[[*spec.features.columns, SCORE, LABEL]], *([served] if len(served) else [])],
        ignore_index=True,
    )
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
    # The report itself stays one file (linked from the asset), not a second copy here. Its
    # tags are the run's from its creation (one write to the tracking store less).
    tags = {
        "monitored_day": str(day),
        "champion_version": version,
        "report": str(path),
        "title": title[:500],
    }
    with mlflow.start_run(experiment_id=experiment, run_name=f"drift-{day}", tags=tags) as run:
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
        champion_trained_to=trained_to,
        champion_pace=pace,
    )


@dataclass(frozen=True)
class Performance:
    """The champion's quality on the window's rows whose label has arrived, and the verdict on
    its drop against the champion's held-out rows (bootstrap confidence interval)."""

    status: str  # "ok" | why nothing was judged (too few labelled rows yet)
    champion_version: str | None
    labelled_rows: int
    scored_rows: int
    baseline: float  # the primary metric on the champion's held-out rows (NaN if unknown)
    metrics: dict[str, float]  # empty until enough rows are labelled
    primary_metric: str
    drop: float = float("nan")  # positive = worse than the baseline
    drop_ci_low: float = float("nan")
    drop_ci_high: float = float("nan")
    confidence: float = float("nan")
    min_labelled_rows: int = 0
    significant_drop: bool = False
    verdict: str = ""
    #: The last day the champion learnt from (its age, for `drift.max_model_age_days`).
    champion_trained_to: str = ""
    window_days: int = 0  # days of labels judged (`drift.performance_window_days`)
    #: What its promotion showed of the world's pace (for `drift.age_loss_budget`).
    champion_pace: Pace | None = None

    @property
    def primary(self) -> float:
        return self.metrics.get(self.primary_metric, float("nan"))

    def metadata(self) -> dict:
        """Asset metadata (the keys the UI plots and the retraining sensor reads)."""
        skip = ("metrics", "primary_metric", "drop", "champion_pace")
        out = {k: v for k, v in asdict(self).items() if k not in skip}
        return {
            **out,
            **Pace.metadata_of(self.champion_pace),
            **self.metrics,
            self.primary_metric: self.primary,
            "performance_drop": self.drop,
        }


def run_performance(
    spec: ModelSpec, day: dt.date, warehouse: Warehouse, registry: ModelRegistry
) -> Performance:
    """Quality of the scores already served, on rows whose label has arrived, against the
    champion's held-out rows: the drop with its bootstrap confidence interval."""
    recent = recent_scored(spec, day, warehouse)
    window = spec.drift.performance_days
    known = labelled(recent)
    known = known[known[EVENT_DATE].dt.date > day - dt.timedelta(days=window)]
    version = registry.alias_version(spec.name, CHAMPION)
    trained_to = TimeSplit.from_tags(registry.version_tags(spec.name, version)).train_end
    reference = performance_reference(spec, version, warehouse, registry)
    metric = spec.gate.primary_metric
    verdict = performance_verdict(
        metric,
        known[LABEL].to_numpy(),
        known[SCORE].to_numpy(),
        reference[LABEL].to_numpy(),
        reference[SCORE].to_numpy(),
        min_rows=spec.drift.performance_min_rows,
        min_drop=spec.drift.performance_drop,
        confidence=spec.drift.confidence,
        samples=spec.drift.bootstrap_samples,
        current_groups=days_of(known[EVENT_DATE]),
        reference_groups=days_of(reference[DAY]),
    )
    metrics = {}
    # Too few outcomes yet (the first days after scoring starts): say so, judge nothing.
    if verdict.status == "ok":
        metrics = compute_metrics(spec, known[LABEL].to_numpy(), known[SCORE].to_numpy())
    performance = Performance(
        status=verdict.status,
        champion_version=version,
        labelled_rows=len(known),
        scored_rows=len(recent),
        baseline=float(verdict.reference),
        metrics={k: float(v) for k, v in metrics.items()},
        primary_metric=metric,
        drop=float(verdict.drop),
        drop_ci_low=float(verdict.low),
        drop_ci_high=float(verdict.high),
        confidence=float(verdict.confidence),
        min_labelled_rows=spec.drift.performance_min_rows,
        significant_drop=bool(verdict.significant),
        verdict=verdict.describe(),
        champion_trained_to=str(trained_to),
        window_days=window,
        champion_pace=champion_pace(spec, registry, version),
    )
    log_live_performance(registry, spec.name, day, version, performance.metadata())  # MLflow
    return performance
