"""How the platform's records read in the MLflow UI (no Dagster).

- Experiments open in MLflow 3's classic ML view (`mlflow.experimentKind`) and say what they hold.
- A training run has a description, a link to the Dagster run that made it, and after the gate
  its verdict as tags (`gate_status`, `gate_failed_checks`), as on the version.
- The version's description is its model card; its held-out metrics are logged against the
  logged model and the held-out rows as an evaluation dataset.
- The audit trail of alias changes is also a CSV artifact on the runs of the versions it moved
  (the UI shows CSV artifacts as tables).
- Monitoring logs the champion's live performance per day (one run per champion version, one
  point per day: the day is the metric's timestamp and step).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pandas as pd

from mlops_platform.model import tags as t

#: The Dagster webserver as people reach it (`MLOPS_DAGSTER_UI_URL`), for links back to runs.
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
#: MLflow keeps a version description in a VARCHAR(5000) (PostgreSQL enforces it).
MAX_VERSION_DESCRIPTION = 5000
AUDIT_ARTIFACT = "audit/alias_changes.csv"
AUDIT_TABLE_COLUMNS = [
    "seq",
    "changed_at",
    "alias",
    "from_version",
    "to_version",
    "reason",
    "actor",
    "dagster_run_id",
    "change_id",
    "row_hash",
]
MONITORING_SUFFIX = "-monitoring"
EPOCH = dt.date(1970, 1, 1)


def dagster_ui_url() -> str:
    return (os.environ.get("MLOPS_DAGSTER_UI_URL") or DEFAULT_DAGSTER_UI_URL).rstrip("/")


def dagster_run_url(run_id: str) -> str:
    return f"{dagster_ui_url()}/runs/{run_id}"


def mlflow_ui_url() -> str:
    """Where people open the MLflow UI (`make mlflow`; MLOPS_MLFLOW_UI_URL elsewhere)."""
    return (os.environ.get("MLOPS_MLFLOW_UI_URL") or DEFAULT_MLFLOW_UI_URL).rstrip("/")


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_version_url(model: str, version: str) -> str:
    return f"{mlflow_ui_url()}/#/models/{model}/versions/{version}"


def dagster_run_link(run_id: str) -> str:
    """Markdown link to a Dagster run (a run id that is not a Dagster run's stays plain)."""
    if not run_id or not all(c.isalnum() or c == "-" for c in run_id):
        return f"`{run_id or 'none'}`"
    return f"[{run_id}]({dagster_run_url(run_id)})"


def experiment_description(name: str) -> str:
    if name.endswith(MONITORING_SUFFIX):
        model = name.removesuffix(MONITORING_SUFFIX)
        return (
            f"Monitoring of `{model}`'s champion: one `drift-<day>` run per monitored day "
            "(drift share, prediction drift, per-feature drift) and one "
            "`live-performance-v<version>` run per champion, one point per day of its quality "
            "on the scored rows whose label has arrived."
        )
    return (
        f"Training runs of model spec `{name}`: each run fits one version on a time window of "
        f"the warehouse table `features.{name}`, is gated on the following held-out days, and "
        "registers the version (its description is the model card)."
    )


def experiment_tags(name: str) -> dict[str, str]:
    """Tags every platform experiment carries (classic ML view, a description)."""
    return {
        t.MLFLOW_EXPERIMENT_KIND: t.EXPERIMENT_KIND_CLASSIC_ML,
        t.MLFLOW_NOTE: experiment_description(name),
    }


def ensure_experiment_tags(client, experiment) -> None:
    """Set the kind and description on an experiment made before they existed (or by MLflow's
    own defaults), leaving a description someone wrote alone."""
    wanted = experiment_tags(experiment.name)
    kind = t.MLFLOW_EXPERIMENT_KIND
    for key, value in wanted.items():
        have = experiment.tags.get(key)
        if not have or (key == kind and have != value):
            client.set_experiment_tag(experiment.experiment_id, key, value)


def training_run_description(
    spec_name: str, split, train_rows: int, holdout_rows: int, dagster_run_id: str, shuffled: bool
) -> str:
    drill = "\n\n**Drill**: trained on shuffled labels; the gate must stop it." if shuffled else ""
    return (
        f"Training of `{spec_name}` on `features.{spec_name}` from {split.train_start} to "
        f"{split.train_end} ({train_rows} labelled rows); gated on {split.holdout_start} .. "
        f"{split.holdout_end} ({holdout_rows} rows).\n\n"
        f"Dagster run: {dagster_run_link(dagster_run_id)}{drill}"
    )


def set_registered_model_description(client, name: str, description: str) -> None:
    """The registered model's description: the spec's (only when it has none yet)."""
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=description.strip())


def record_gate_verdict(registry, model: str, version: str, run_id: str, summary, card: str):
    """The gate's verdict on the training run (tags and description) and the model card as
    the version's description (cut to what MLflow stores, pointing at the full card)."""
    client = registry.client
    for key, value in {
        t.GATE_PASSED: str(bool(summary.passed)).lower(),
        t.GATE_STATUS: summary.status,
        t.GATE_FAILED_CHECKS: ",".join(summary.failed_checks) or "none",
    }.items():
        client.set_tag(run_id, key, value)
    verdict = (
        "**Gate: passed**"
        if summary.passed
        else "**Gate: rejected** (failed: " + ", ".join(summary.failed_checks) + ")"
    )
    note = client.get_run(run_id).data.tags.get(t.MLFLOW_NOTE, "")
    note = note.split("\n\n**Gate:")[0]
    client.set_tag(
        run_id,
        t.MLFLOW_NOTE,
        f"{note}\n\n{verdict} for version {version}: see `gate/gate_report.md` and "
        "`model_card.md`.",
    )
    client.update_model_version(model, version, description=_fit(card))


def _fit(card: str) -> str:
    if len(card) <= MAX_VERSION_DESCRIPTION:
        return card
    tail = "\n\n… (cut here; the whole card is the run's `model_card.md` artifact)\n"
    return card[: MAX_VERSION_DESCRIPTION - len(tail)] + tail


def logged_model_id(client, model: str, version: str) -> str | None:
    """The MLflow 3 logged model behind a version: its `model_id` (the SQL registry does not
    store it), else the `models:/m-...` source it was registered from, else the one model its
    run logged."""
    mv = client.get_model_version(model, version)
    if mv.model_id:
        return mv.model_id
    if mv.source and mv.source.startswith("models:/m-"):
        return mv.source.removeprefix("models:/").split("/")[0]
    outputs = client.get_run(mv.run_id).outputs.model_outputs if mv.run_id else []
    return outputs[0].model_id if len(outputs) == 1 else None


def log_evaluation(registry, model: str, version: str, run_id: str, dataset, metrics: dict):
    """Held-out metrics against the version's logged model and its evaluation dataset (the
    rows it was gated on), on the training run: the model's page lists them by dataset."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    mlflow = registry.fluent()
    client = registry.client
    model_id = logged_model_id(client, model, version)
    context = InputTag(key=MLFLOW_DATASET_CONTEXT, value="evaluation")
    client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(), [context])])
    mlflow.log_metrics(
        {f"holdout_{k}": float(v) for k, v in metrics.items()},
        run_id=run_id,
        model_id=model_id,
        dataset=dataset,
        synchronous=True,
    )


def publish_audit_table(registry, audit: pd.DataFrame, versions: dict[str, set[str]]) -> None:
    """The audit rows of each model, as a CSV table on the runs of the versions just moved."""
    client = registry.client
    for model, moved in versions.items():
        rows = audit[audit["model"] == model]
        table = rows[[c for c in AUDIT_TABLE_COLUMNS if c in rows.columns]].to_csv(index=False)
        for version in sorted(v for v in moved if v):
            run_id = client.get_model_version(model, version).run_id
            if run_id:
                client.log_text(run_id, table, AUDIT_ARTIFACT)


def log_live_performance(
    registry, model: str, day: dt.date, version: str | None, values: dict[str, Any]
) -> str | None:
    """One day's live performance of the champion: a point at that day (timestamp and step)
    on the champion's `live-performance-v<version>` run, against its logged model. Counts are
    logged every day; quality metrics only once enough labels have arrived (numbers only)."""
    if version is None:
        return None
    from mlflow.entities import Metric

    client = registry.client
    experiment_id = registry.experiment_id(f"{model}{MONITORING_SUFFIX}")
    run_name = f"live-performance-v{version}"
    found = client.search_runs(
        [experiment_id], f"tags.`mlflow.runName` = '{run_name}'", max_results=1
    )
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={
                "champion_version": version,
                t.MLFLOW_NOTE: (
                    f"Live performance of `{model}` v{version} while it was champion: one "
                    "point per monitored day (x axis: step = day number, or wall time = the "
                    "day), on scored rows whose label has arrived."
                ),
            },
        ).info.run_id
        client.set_terminated(run_id)  # points are added day by day; the run itself is done
    model_id = logged_model_id(client, model, version)
    if model_id and not found:
        from mlflow.entities import LoggedModelInput

        client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
    # MLflow's timestamps cannot precede 1970 (a history replayed from the 1950s): such a day
    # keeps its day number as the step and is stamped when it was logged.
    stamp = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
    if stamp < 0:
        stamp = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    step = (day - EPOCH).days
    numbers = {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v
    }
    # A day monitored again (a retried run, a run after a scores backfill) adds a point at the
    # same step one millisecond after that day's last, so the newest value is the latest, and an
    # unchanged value adds nothing: MLflow refuses two points of a logged model with the same
    # name, timestamp and step even when their values differ.
    last = _last_points(client, found[0], step, numbers) if found and numbers else {}
    metrics = [
        Metric(k, v, max(stamp, last[k][0] + 1) if k in last else stamp, step, model_id=model_id)
        for k, v in numbers.items()
        if k not in last or last[k][1] != v
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics, synchronous=True)
    return run_id


def _last_points(client, run, step: int, keys) -> dict[str, tuple[int, float]]:
    """{metric: (timestamp, value)} of the latest point at `step` on `run` (as a search
    returned it), for `keys`. A run's latest value of a metric is its point of the highest
    step (then timestamp, then value): a metric whose latest step is below `step` (a day
    monitored for the first time, the common case) has no point there, and its history,
    which grows by a point a day, is not read."""
    latest = {m.key: m.step for m in run.data.to_proto().metrics}
    last: dict[str, tuple[int, float]] = {}
    for key in keys:
        if latest.get(key, step - 1) < step:
            continue
        at_step = [m for m in client.get_metric_history(run.info.run_id, key) if m.step == step]
        if at_step:
            newest = max(at_step, key=lambda m: m.timestamp)
            last[key] = (newest.timestamp, newest.value)
    return last
