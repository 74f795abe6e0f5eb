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
from mlops_platform.model.split import holdout_of
from mlops_platform.model.tags import ARTIFACT_SHA256
from mlops_platform.model.version import VersionRecord
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
        champion_model = registry.load_verified(spec.name, champion_version)
        champion = evaluate(champion_model, champion_version, holdout, spec, latency=False)
    # Both timed in this process, round by round, so a busy machine slows both alike.
    latency = measure_latency(challenger_model, holdout, spec, champion_model)
    challenger.latency_ms, challenger.latency_rounds = latency.challenger, latency.rounds
    if champion is not None:
        champion.latency_ms = latency.champion or {}
    result = decide(spec, challenger, champion)

    run_id = registry.run_id_of(spec.name, version)
    summary = result.summary()
    registry.log_text(run_id, gate_report(spec, result), "gate/gate_report.md")
    registry.log_text(run_id, json.dumps(summary.to_dict(), indent=2), "gate/gate_summary.json")
    tags = registry.version_tags(spec.name, version)
    registry.log_text(
        run_id,
        model_card(spec, version, record, result, tags.get(ARTIFACT_SHA256, "")),
        "model_card.md",
    )
    registry.client.log_metric(run_id, "gate_passed", float(result.passed))
    for metric, value in result.challenger.metrics.items():
        registry.client.log_metric(run_id, f"holdout_{metric}", value)
    record_gate(registry, spec.name, version, summary)
    return result
