"""What the MLflow UI shows of a trained, gated and promoted version (a real SQLite store, the
session's signed flight_delay v1): experiment kind and descriptions, the gate verdict on the
run and the version, the model card as the version's description, the datasets named by their
warehouse table, held-out metrics on the logged model, links to Dagster, the audit table, and
live performance per day."""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mlops_platform.model import tags as t
from mlops_platform.registry.mlflow_ui import (
    AUDIT_ARTIFACT,
    EPOCH,
    dagster_run_link,
    dagster_run_url,
    log_live_performance,
    logged_model_id,
)
from mlops_platform.specs import load_spec

MODEL = "flight_delay"


@pytest.fixture()
def version_run(signed_registry):
    registry, warehouse = signed_registry
    version = registry.client.get_model_version(MODEL, "1")
    return registry, warehouse, version, registry.client.get_run(version.run_id)


def test_experiment_opens_in_the_classic_ml_view_and_says_what_it_holds(version_run):
    registry, _, _, run = version_run
    experiment = registry.client.get_experiment(run.info.experiment_id)
    assert experiment.tags[t.MLFLOW_EXPERIMENT_KIND] == "custom_model_development"
    assert "features.flight_delay" in experiment.tags[t.MLFLOW_NOTE]
    described = registry.client.get_registered_model(MODEL).description
    assert described == load_spec(MODEL).description.strip()


def test_an_experiment_made_before_the_conventions_gets_them(version_run):
    registry, *_ = version_run
    client = registry.client
    old = client.create_experiment("legacy-monitoring", tags={t.MLFLOW_EXPERIMENT_KIND: "x"})
    assert registry.experiment_id("legacy-monitoring") == old
    tags = client.get_experiment(old).tags
    assert tags[t.MLFLOW_EXPERIMENT_KIND] == "custom_model_development"
    assert "live-performance-v<version>" in tags[t.MLFLOW_NOTE]


def test_training_run_links_to_dagster_and_carries_the_gate_verdict(version_run):
    _, _, version, run = version_run
    tags = run.data.tags
    assert tags[t.DAGSTER_RUN_URL] == "http://127.0.0.1:3000/runs/fixture"
    note = tags[t.MLFLOW_NOTE]
    assert "[fixture](http://127.0.0.1:3000/runs/fixture)" in note
    assert "features.flight_delay" in note and "**Gate: passed** for version 1" in note
    assert tags[t.GATE_STATUS] == t.GATE_ACCEPTED and tags[t.GATE_PASSED] == "true"
    assert tags[t.GATE_FAILED_CHECKS] == "none"
    # The version says the same, and its description is the model card.
    assert version.tags[t.GATE_STATUS] == t.GATE_ACCEPTED
    assert version.description.startswith("# Model card: flight_delay v1")
    assert "## Lineage" in version.description


def test_datasets_are_the_warehouse_table_windows(version_run):
    registry, _, _, run = version_run
    by_context = {
        next(tag.value for tag in d.tags if tag.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(by_context) == {"training", "evaluation"}
    window = {k.removeprefix("window."): v for k, v in run.data.tags.items() if "window." in k}
    for context, (start, end) in {
        "training": (window["train_start"], window["train_end"]),
        "evaluation": (window["holdout_start"], window["holdout_end"]),
    }.items():
        dataset = by_context[context]
        source = json.loads(dataset.source)
        assert dataset.source_type == "warehouse"
        assert source["uri"] == "warehouse://features.flight_delay"
        assert f"DATE '{start}' AND DATE '{end}'" in source["where"]
        assert source["backend"] == "duckdb" and source["database"].endswith("warehouse.duckdb")
        assert "tags" not in source


def test_holdout_metrics_are_logged_against_the_model_and_the_evaluation_dataset(version_run):
    registry, _, version, run = version_run
    model_id = logged_model_id(registry.client, MODEL, "1")
    (output,) = run.outputs.model_outputs
    assert model_id == output.model_id
    logged = registry.client.get_logged_model(model_id)
    holdout = {m.key: m for m in logged.metrics if m.dataset_name}
    gated = json.loads(version.tags[t.GATE_SUMMARY])["metrics"]
    assert set(holdout) == {f"holdout_{k}" for k in gated} and "holdout_roc_auc" in holdout
    evaluation = next(
        d.dataset
        for d in run.inputs.dataset_inputs
        if any(tag.value == "evaluation" for tag in d.tags)
    )
    for metric in holdout.values():
        assert metric.dataset_name == evaluation.name and metric.dataset_digest == evaluation.digest
        assert metric.model_id == model_id
    assert run.data.metrics["holdout_roc_auc"] == holdout["holdout_roc_auc"].value


def test_audit_trail_is_a_table_on_the_promoted_versions_run(version_run):
    registry, _, _, run = version_run
    path = registry.client.download_artifacts(run.info.run_id, AUDIT_ARTIFACT)
    table = pd.read_csv(io.StringIO(Path(path).read_text()), dtype=str)
    # The registration's two moves first; other tests of the session share this registry and
    # may have moved aliases since (the table is rewritten on each move to v1).
    assert list(zip(table["alias"], table["to_version"], strict=True))[:2] == [
        ("challenger", "1"),
        ("champion", "1"),
    ]
    assert table["seq"].tolist() == [str(n) for n in range(1, len(table) + 1)]
    assert table["row_hash"].str.len().eq(64).all()
    # Written at the last move to v1: its last row is that move.
    assert table["to_version"].iloc[-1] == "1"


def test_live_performance_is_one_point_per_day_on_the_champions_run(version_run):
    registry, *_ = version_run
    days = [dt.date(2013, 2, 11), dt.date(2013, 2, 12)]
    values = [
        {"status": "too few labels", "labelled_rows": 12, "roc_auc": float("nan")},
        {"status": "ok", "labelled_rows": 900, "roc_auc": 0.71, "significant_drop": False},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing MLflow might print on the way
        run_ids = {
            log_live_performance(registry, MODEL, day, "1", v)
            for day, v in zip(days, values, strict=True)
        }
    (run_id,) = run_ids  # the same run for the same champion
    client = registry.client
    run = client.get_run(run_id)
    assert run.info.run_name == "live-performance-v1" and run.data.tags["champion_version"] == "1"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "flight_delay-monitoring"
    assert experiment.tags[t.MLFLOW_EXPERIMENT_KIND] == "custom_model_development"
    rows = client.get_metric_history(run_id, "labelled_rows")
    assert [(m.value, m.step) for m in rows] == [(12, 15747), (900, 15748)]
    assert [dt.datetime.fromtimestamp(m.timestamp / 1000, dt.UTC).date() for m in rows] == days
    (auc,) = client.get_metric_history(run_id, "roc_auc")  # NaN (not judged) is not a point
    assert auc.value == 0.71
    # Against the champion's logged model too: its page lists the day's points.
    model_id = logged_model_id(client, MODEL, "1")
    assert [m.model_id for m in run.inputs.model_inputs] == [model_id]
    on_model = {(m.key, m.step): m.value for m in client.get_logged_model(model_id).metrics}
    assert on_model[("roc_auc", 15748)] == 0.71 and on_model[("labelled_rows", 15747)] == 12
    assert "status" not in run.data.metrics and "significant_drop" not in run.data.metrics
    assert log_live_performance(registry, MODEL, days[0], None, values[0]) is None
    # A day before 1970 (a replayed history) keeps its day number; MLflow refuses negative
    # timestamps, so it is stamped when logged.
    log_live_performance(registry, MODEL, dt.date(1962, 7, 31), "1", values[1])
    old = [m for m in client.get_metric_history(run_id, "labelled_rows") if m.step < 0]
    assert [(m.value, m.step) for m in old] == [(900, (dt.date(1962, 7, 31) - EPOCH).days)]
    assert old[0].timestamp > 0


def test_a_day_monitored_again_logs_its_new_values_as_the_latest(version_run):
    """A retried monitoring run, or one after a scores backfill, logs the same day again with
    other values: MLflow refuses a second point of a logged model at the same timestamp and
    step, so the newer point comes a millisecond later, and an unchanged value adds none."""
    registry, *_ = version_run
    client = registry.client
    day = dt.date(2013, 3, 9)
    first = {"labelled_rows": 10, "scored_rows": 20}
    again = {"labelled_rows": 10, "scored_rows": 140, "roc_auc": 0.7}
    run_id = log_live_performance(registry, MODEL, day, "1", first)
    assert log_live_performance(registry, MODEL, day, "1", again) == run_id
    assert log_live_performance(registry, MODEL, day, "1", again) == run_id
    step = (day - EPOCH).days

    def points(key):
        return [m for m in client.get_metric_history(run_id, key) if m.step == step]

    assert [m.value for m in points("labelled_rows")] == [10]
    scored = sorted(points("scored_rows"), key=lambda m: m.timestamp)
    assert [m.value for m in scored] == [20, 140]
    assert [dt.datetime.fromtimestamp(m.timestamp / 1000, dt.UTC).date() for m in scored] == [
        day,
        day,
    ]
    model_id = logged_model_id(client, MODEL, "1")
    on_model = [
        m.value
        for m in client.get_logged_model(model_id).metrics
        if m.key == "scored_rows" and m.step == step
    ]
    assert sorted(on_model) == [20, 140]


@pytest.mark.parametrize(
    ("run_id", "link"),
    [
        ("0b1c-22", "[0b1c-22](http://dagster.example/runs/0b1c-22)"),
        ("", "`none`"),
        ("a b)(x", "`a b)(x`"),  # not a run id: never markup
    ],
)
def test_dagster_links_use_the_configured_webserver(monkeypatch, run_id, link):
    monkeypatch.setenv("MLOPS_DAGSTER_UI_URL", "http://dagster.example/")
    assert dagster_run_link(run_id) == link
    assert dagster_run_url("r1") == "http://dagster.example/runs/r1"


def test_logging_a_version_states_its_environment_and_prints_nothing(tmp_path, capfd):
    """No pip/uv inference notices, no registration prints: the requirements are stated (the
    conda env names this Python and exactly them), and the version is registered through the
    client. The store is created first: its one-time migrations are not what is checked."""
    from importlib.metadata import version

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlops_platform.registry.store import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    experiment = registry.experiment_id("quiet")
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = HistGradientBoostingClassifier(max_iter=3).fit(x, (x["a"] > 0).astype(int))
    requirements = [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")]
    mlflow = registry.fluent()
    with warnings.catch_warnings():  # MLflow's own GenAI types warn once, on first import
        warnings.simplefilter("ignore")
        import mlflow.pyfunc  # noqa: F401
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mlflow.start_run(experiment_id=experiment) as run:
            number, _ = registry.log_model_version(
                "quiet", model, x.head(3), model.predict_proba(x.head(3)), requirements
            )
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    mv = registry.client.get_model_version("quiet", number)
    assert number == "1" and mv.run_id == run.info.run_id
    assert logged_model_id(registry.client, "quiet", "1") == run.outputs.model_outputs[0].model_id
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp_path))
    assert (local / "requirements.txt").read_text().split() == requirements
    assert "uv.lock" not in {p.name for p in local.iterdir()}


def test_a_day_monitored_again_after_a_later_day_still_finds_its_points(version_run):
    """The run's latest point of a metric is the later day's; an earlier day monitored again
    (a scores backfill) still finds its own last points: an unchanged value adds none, a
    changed one comes a millisecond after that day's last."""
    registry, *_ = version_run
    client = registry.client
    early, later = dt.date(2013, 4, 2), dt.date(2013, 4, 3)
    run_id = log_live_performance(registry, MODEL, early, "1", {"scored_rows": 20, "x": 1})
    log_live_performance(registry, MODEL, later, "1", {"scored_rows": 30, "x": 2})
    log_live_performance(registry, MODEL, early, "1", {"scored_rows": 20, "x": 5})
    step = (early - EPOCH).days

    def points(key):
        return sorted(
            (m.timestamp, m.value) for m in client.get_metric_history(run_id, key) if m.step == step
        )

    assert [v for _, v in points("scored_rows")] == [20]
    (first, _), (second, value) = points("x")
    assert value == 5 and second == first + 1
