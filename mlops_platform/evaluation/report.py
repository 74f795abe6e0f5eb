"""Markdown documents: the gate report and the model card of a version."""

from __future__ import annotations

from mlops_platform.domains import domain_for
from mlops_platform.evaluation.gate import LATENCY_CALLS, GateResult
from mlops_platform.model.version import VersionRecord
from mlops_platform.specs import ModelSpec


def _metrics_table(result: GateResult) -> list[str]:
    champion = result.champion
    lines = ["| metric | challenger | champion |", "|---|---|---|"]
    for metric, value in result.challenger.metrics.items():
        other = f"{champion.metrics[metric]:.4f}" if champion else "-"
        lines.append(f"| {metric} | {value:.4f} | {other} |")
    return lines


def gate_report(spec: ModelSpec, result: GateResult) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    champion = f"v{result.champion.version}" if result.champion else "none"
    lines = [
        f"# Evaluation gate: {spec.name} v{result.challenger.version} — {verdict}",
        "",
        f"Held-out rows: {result.challenger.rows}; current champion: {champion}.",
        "",
        "## Checks",
        "| check | passed | detail |",
        "|---|---|---|",
        *[f"| {c.name} | {'yes' if c.passed else '**no**'} | {c.detail} |" for c in result.checks],
        "",
        "## Metrics on the held-out window",
        *_metrics_table(result),
        "",
        "## Slices",
        f"| slice | rows | challenger {spec.gate.primary_metric} | champion |",
        "|---|---|---|---|",
    ]
    for key, value in result.challenger.slices.items():
        other = result.champion.slices.get(key) if result.champion else None
        lines.append(
            f"| {key} | {result.challenger.slice_rows[key]} | {value:.4f} | "
            f"{'-' if other is None else f'{other:.4f}'} |"
        )
    latency = result.challenger.latency_ms
    champion_latency = result.champion.latency_ms if result.champion else {}
    paired = result.challenger.latency_vs_champion
    rounds = result.challenger.latency_rounds
    calls = LATENCY_CALLS["single_row_ms"], LATENCY_CALLS["rows_1000_ms"]

    def figure(label: str, ms: float) -> str:
        line = f"- {label}: {ms:.2f}"
        if label in champion_latency:
            line += f" (champion {champion_latency[label]:.2f}"
            line += f", paired ratio {paired[label].ratio:.2f})" if label in paired else ")"
        return line

    lines += [
        "",
        "## Latency (serving path, one thread, CPU ms per call)",
        f"Best round's median of {rounds} round(s) of {calls[0]} single-row and {calls[1]} "
        "1,000-row calls per model"
        + (
            "; challenger and champion called alternately, call by call, and compared pair "
            "by pair (the ratio is the median over every pair of calls)."
            if paired
            else "."
        ),
        *[figure(label, ms) for label, ms in latency.items()],
    ]
    return "\n".join(lines) + "\n"


def model_card(
    spec: ModelSpec, version: str, record: VersionRecord, result: GateResult, artifact_sha256: str
) -> str:
    """Intended use, data window, metrics, slices, limitations, and lineage of one version
    (the prose about the data comes from the spec's domain declaration)."""
    split = record.split
    domain = domain_for(spec)
    rows = domain.entity.plural
    limitations = "\n".join(f"- {line.strip()}" for line in domain.limitations) or "- none declared"
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in result.challenger.metrics.items())
    slices = "\n".join(
        f"| {k} | {result.challenger.slice_rows[k]} | {v:.4f} |"
        for k, v in result.challenger.slices.items()
    )
    return f"""# Model card: {spec.name} v{version}

## Intended use
{spec.description.strip()}

Task: {spec.task}; target: `{spec.target.column}`{
        f" > {spec.target.threshold:g}" if spec.target.threshold is not None else ""
    };
prediction point: {spec.prediction_point}.

## Data
- training window: {split.train_start} .. {split.train_end}
  ({record.train_rows} labelled {rows})
- held-out window: {split.holdout_start} .. {split.holdout_end}
  ({result.challenger.rows} {rows})
- features: {", ".join(spec.features.columns)}

## Metrics (held-out window)
| metric | value |
|---|---|
{metrics}

## Slices ({spec.gate.primary_metric})
| slice | rows | value |
|---|---|---|
{slices}

## Gate
{"passed" if result.passed else "FAILED: " + "; ".join(c.name for c in result.failures)}

## Data domain
{domain.description.strip()}

Labels: {domain.label.arrives.strip()}.

## Limitations
{limitations}

## Lineage
training data digest `{record.data_digest}` → MLflow run `{record.mlflow_run_id}` →
model `{spec.name}` version {version} (artifact SHA-256 `{artifact_sha256}`) ←
Dagster run `{record.dagster_run_id}`, code `{record.code_version}`.
"""
