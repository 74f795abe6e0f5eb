"""What monitoring compares against, per champion version (no Dagster).

- the drift reference: the last `drift.reference_days` of the champion's training window, scored
  by the champion, with labels and days (for the label shift and the calibration's windows);
- its calibration: per-column thresholds from its own windows (`calibration.py`);
- the performance reference: the champion's held-out rows with their labels and its scores.

Each depends only on the version (and the spec's drift settings), so it is computed once and
kept in `<data dir>/monitoring/<spec>/`, named by the MLflow run (no registry reset reuses it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd

from mlops_platform.model.columns import EVENT_DATE, LABEL, SCORE
from mlops_platform.model.predict import predict
from mlops_platform.model.split import TimeSplit, days_between, rows_between
from mlops_platform.monitoring.calibration import Calibration
from mlops_platform.registry.store import ModelRegistry
from mlops_platform.settings import data_dir
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import WarehouseStore

#: The feature table's day column (model.columns.EVENT_DATE once the table is renamed).
DAY = EVENT_DATE
#: The champion's training rows are sampled down to this for the drift reference.
REFERENCE_ROWS = 50_000


def reference_window(spec: ModelSpec, split: TimeSplit) -> tuple[dt.date, dt.date]:
    """The days the drift reference covers: the end of the training window."""
    start = split.train_start
    if spec.drift.reference_days:
        start = max(start, split.train_end - dt.timedelta(days=spec.drift.reference_days - 1))
    return start, split.train_end


def _cache(spec: ModelSpec, kind: str, version: str, run_id: str, suffix: str):
    settings = json.dumps(
        [spec.drift.model_dump(), spec.features.model_dump()], sort_keys=True, default=str
    )
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    path = data_dir() / "monitoring" / spec.name / f"{kind}-v{version}-{run_id}-{digest}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def drift_reference(
    spec: ModelSpec, version: str, warehouse: WarehouseStore, registry: ModelRegistry
) -> pd.DataFrame:
    """Feature columns, `score` (the champion's), `label` and the day of a sample of the
    reference window's rows."""
    cache = _cache(spec, "reference", version, registry.run_id_of(spec.name, version), ".parquet")
    if cache.exists():
        return pd.read_parquet(cache)
    split = TimeSplit.from_tags(registry.version_tags(spec.name, version))
    start, end = reference_window(spec, split)
    features = warehouse.read_table("features", spec.name, where=days_between(start, end))
    model = registry.verified_model(spec.name, version)
    reference = drift_reference_rows(spec, features, split, model)
    reference.to_parquet(cache)
    return reference


def drift_reference_rows(spec: ModelSpec, features: pd.DataFrame, split: TimeSplit, model):
    """The drift reference of a model trained on `split`, from a feature table holding at
    least its reference window (pure: what `drift_reference` stores)."""
    start, end = reference_window(spec, split)
    reference = rows_between(features[features[LABEL].notna()], start, end)
    reference = reference.sample(n=min(len(reference), REFERENCE_ROWS), random_state=0)
    reference = reference.assign(**{SCORE: predict(model, reference, spec)})
    return reference[[*spec.features.columns, SCORE, LABEL, DAY]].reset_index(drop=True)


def drift_calibration(
    spec: ModelSpec, version: str, reference: pd.DataFrame, registry: ModelRegistry
) -> Calibration:
    """The reference's calibration for windows of `drift.window_days` days."""
    from mlops_platform.monitoring.drift import calibrate_spec

    cache = _cache(spec, "calibration", version, registry.run_id_of(spec.name, version), ".json")
    if cache.exists():
        return Calibration.from_json(cache.read_text())
    calibration = calibrate_spec(reference, spec, reference[DAY])
    cache.write_text(calibration.to_json())
    return calibration


def performance_reference(
    spec: ModelSpec, version: str, warehouse: WarehouseStore, registry: ModelRegistry
) -> pd.DataFrame:
    """`label`, `score` and day of the champion on its own held-out rows (what its gate
    measured)."""
    cache = _cache(spec, "holdout", version, registry.run_id_of(spec.name, version), ".parquet")
    if cache.exists():
        cached = pd.read_parquet(cache)
        if DAY in cached.columns:  # one stored before the day was kept is built again
            return cached
    split = TimeSplit.from_tags(registry.version_tags(spec.name, version))
    features = warehouse.read_table(
        "features", spec.name, where=days_between(split.holdout_start, split.holdout_end)
    )
    model = registry.verified_model(spec.name, version)
    holdout = performance_reference_rows(spec, features, split, model)
    holdout.to_parquet(cache)
    return holdout


def performance_reference_rows(
    spec: ModelSpec, features: pd.DataFrame, split: TimeSplit, model
) -> pd.DataFrame:
    """`label`, `score` and day of a model trained on `split` on its held-out rows, from a feature
    table holding at least that window (pure: what `performance_reference` stores)."""
    holdout = rows_between(
        features[features[LABEL].notna()], split.holdout_start, split.holdout_end
    )
    holdout = holdout.assign(**{SCORE: predict(model, holdout, spec)})
    # The day: the significance rule resamples whole days (rows of a day are not independent).
    return holdout[[LABEL, SCORE, DAY]].reset_index(drop=True)
