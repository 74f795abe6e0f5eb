"""Drift of recent production inputs and predictions against the champion's training data,
with Evidently (explicit method and thresholds from the spec). No Dagster."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mlops_platform.specs import ModelSpec

SCORE = "score"


@dataclass
class DriftResult:
    share: float
    drifted: list[str]
    per_feature: dict[str, float]
    prediction_drift: float
    reference_rows: int
    current_rows: int
    snapshot: object
    #: Monitored columns with no value at all on one side (wind gusts on a calm week): they
    #: cannot be compared, so they are left out of this report and named instead.
    empty: list[str] = field(default_factory=list)

    def detected(self, spec: ModelSpec) -> bool:
        return (
            self.share > spec.drift.share_threshold
            or self.prediction_drift > spec.drift.prediction_threshold
        )


def monitored_columns(spec: ModelSpec) -> tuple[list[str], list[str]]:
    numeric = [c for c in spec.features.numeric if c not in spec.drift.exclude]
    categorical = [c for c in spec.features.categorical if c not in spec.drift.exclude]
    return numeric, categorical


def compute_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: ModelSpec) -> DriftResult:
    """Both frames hold the monitored feature columns and a `score` column."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if reference.empty or current.empty:
        raise ValueError(
            f"drift needs rows on both sides: reference {len(reference)}, current {len(current)}"
        )
    numeric, categorical = monitored_columns(spec)
    empty = [
        c
        for c in [*numeric, *categorical]
        if reference[c].notna().sum() == 0 or current[c].notna().sum() == 0
    ]
    numeric = [c for c in numeric if c not in empty]
    categorical = [c for c in categorical if c not in empty]
    definition = DataDefinition(
        numerical_columns=[*numeric, SCORE], categorical_columns=categorical
    )
    method, threshold = spec.drift.method, spec.drift.feature_threshold
    report = Report(
        [
            DataDriftPreset(
                columns=[*numeric, *categorical],
                method=method,
                threshold=threshold,
                drift_share=spec.drift.share_threshold,
            ),
            ValueDrift(column=SCORE, method=method, threshold=spec.drift.prediction_threshold),
        ]
    )
    columns = [*numeric, *categorical, SCORE]
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    per_feature, share, prediction = {}, None, None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
        elif kind == "ValueDrift" and config["column"] == SCORE:
            prediction = float(metric["value"])
        elif kind == "ValueDrift":
            per_feature[config["column"]] = float(metric["value"])
    if share is None or prediction is None:
        raise RuntimeError("Evidently returned no drift share or prediction drift")
    # psi/wasserstein/jensenshannon are distances: above the threshold means drift.
    drifted = sorted(c for c, v in per_feature.items() if v > threshold)
    return DriftResult(
        share, drifted, per_feature, prediction, len(reference), len(current), snapshot, empty
    )
