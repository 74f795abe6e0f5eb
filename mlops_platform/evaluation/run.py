"""Run the gate for the current challenger against the current champion (no Dagster).

Both models are loaded through the verified path (artifact SHA-256) and scored on the
challenger's own held-out window; the report and model card are logged to the challenger's
MLflow run, and the verdict is recorded on the version (the gate tags of its `VersionRecord`:
accepted or rejected, the failed checks, the summary); a pass is signed with the pipeline's key
over the artifact and the summary (`registry/signing.py`). A rejection is an outcome, returned
like a pass; only a gate that cannot run raises.
"""

from __future__ import annotations

import json

import pandas as pd

from mlops_platform.evaluation.gate import (
    GateResult,
    check_inputs,
    decide,
    evaluate,
    measure_latency,
)
from mlops_platform.evaluation.report import gate_report, model_card
from mlops_platform.model.columns import LABEL
from mlops_platform.model.split import TimeSplit, days_between, holdout_of
from mlops_platform.model.tags import ARTIFACT_SHA256
from mlops_platform.model.version import VersionRecord, data_digest
from mlops_platform.registry.datasets import rows_dataset, training_location, warehouse_source
from mlops_platform.registry.mlflow_ui import log_evaluation, record_gate_verdict
from mlops_platform.registry.signing import record_gate
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.specs import ModelSpec


def run_gate(
    spec: ModelSpec, features: pd.DataFrame, registry: ModelRegistry, version: str | None = None
) -> GateResult:
    """Gate `version` (default: the newest registered version); a pass is signed."""
    version = version or registry.latest_version(spec.name)
    if version is None:
        raise RuntimeError(f"{spec.name} has no version to evaluate")
    record = VersionRecord.from_tags(registry.version_tags(spec.name, version))
    split = record.split
    holdout = holdout_of(features, split)
    if len(holdout) != record.holdout_rows:
        raise RuntimeError(
            f"held-out window {split.holdout_start}..{split.holdout_end} has {len(holdout)} "
            f"labelled rows now, {record.holdout_rows} at training: the features changed "
            "under the model; retrain"
        )
    check_inputs(holdout, spec)

    # Not signed yet (the gate is what signs it); digest and layout are still verified.
    challenger_model = registry.load_verified(spec.name, version, signed=False)
    challenger = evaluate(challenger_model, version, holdout, spec, latency=False)
    champion_version = registry.alias_version(spec.name, CHAMPION)
    champion, champion_model = None, None
    if champion_version is not None and champion_version != version:
        # Verified with its signature once per process (the daily scoring step has usually
        # loaded it already): re-verified whenever its recorded digest or signature changes.
        champion_model = registry.verified_model(spec.name, champion_version)
        champion = evaluate(champion_model, champion_version, holdout, spec, latency=False)
    # Both timed in this process, call by call in pairs, so a busy machine slows both alike.
    measure_latency(challenger_model, holdout, spec, champion_model).record(challenger, champion)
    result = decide(spec, challenger, champion)

    run_id = registry.run_id_of(spec.name, version)
    summary = result.summary()
    registry.log_text(run_id, gate_report(spec, result), "gate/gate_report.md")
    registry.log_text(run_id, json.dumps(summary.to_dict(), indent=2), "gate/gate_summary.json")
    tags = registry.version_tags(spec.name, version)
    card = model_card(spec, version, record, result, tags.get(ARTIFACT_SHA256, ""))
    registry.log_text(run_id, card, "model_card.md")
    registry.client.log_metric(run_id, "gate_passed", float(result.passed))
    log_evaluation(
        registry,
        spec.name,
        version,
        run_id,
        holdout_dataset(registry, spec, run_id, holdout, split),
        result.challenger.metrics,
    )
    record_gate(registry, spec.name, version, summary)
    record_gate_verdict(registry, spec.name, version, run_id, summary, card)
    return result


def gate_rows(warehouse, spec: ModelSpec, split: TimeSplit) -> pd.DataFrame:
    """The feature rows of a version's held-out window, read from the warehouse alone (the
    gate looks at nothing else): the rows, in their order, that `holdout_of` keeps from the
    whole table, without reading a year of training rows to keep a week."""
    return warehouse.read_table(
        "features", spec.name, where=days_between(split.holdout_start, split.holdout_end)
    )


def holdout_dataset(registry: ModelRegistry, spec: ModelSpec, run_id: str, holdout, split):
    """The held-out rows (the model's columns, as for training) as an MLflow evaluation
    dataset, from the same warehouse table as the training rows (the location the training
    run logged)."""
    location = training_location(registry.client.get_run(run_id))
    source = warehouse_source(
        "features", spec.name, split.holdout_start, split.holdout_end, **location
    )
    rows = holdout[[*spec.features.columns, LABEL]].reset_index(drop=True)
    name = f"{spec.name}_holdout_{split.holdout_start}_{split.holdout_end}"
    return rows_dataset(rows, name, data_digest(rows), source)
