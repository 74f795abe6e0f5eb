"""Train -> gate -> promote -> approve -> roll back, for real: DuckDB, MLflow, skops artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.definitions import spec_definitions
from mlops_platform.model.tags import GATE_REJECTED
from mlops_platform.model.version import VersionRecord
from mlops_platform.registry.promotion import PromotionRefused, audit_log, promote
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.registry.store import TamperedArtifactError
from mlops_platform.specs import load_spec
from mlops_platform.warehouse.resources import DuckDBWarehouse
from mlops_platform_tests.helpers import QUIET


def relaxed(spec):
    """The spec with latency budgets no busy test machine misses: tests check what the gate
    does, not how fast this machine is (the budget itself is tested below with one no model
    can meet)."""
    gate = spec.gate.model_copy(
        update={"latency_single_row_ms": 5_000, "latency_1000_rows_ms": 20_000}
    )
    return spec.model_copy(update={"gate": gate})


SPEC = relaxed(load_spec("flight_delay"))


@pytest.fixture()
def env(golden, data_dir) -> dict:
    """The local profile's layout in the test's data dir (so the `mlops` CLI finds it too)."""
    (data_dir / "mlflow").mkdir()
    shutil.copy(golden / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    shutil.copy(golden / "mlflow.db", data_dir / "mlflow" / "mlflow.db")
    return {
        "warehouse": DuckDBWarehouse(),
        "mlflow_registry": MLflowResource(),
        "alerting": AlertingResource(),  # the deploy guard's incidents
    }


def run_train(
    env: dict, spec=SPEC, training: dict | None = None, promotion: dict | None = None, instance=None
) -> dg.ExecuteInJobResult:
    defs = dg.Definitions.merge(spec_definitions([spec]), dg.Definitions(resources=env))
    ops = {}
    if training:
        ops[spec.name + "__model"] = {"config": training}
    if promotion:
        ops[spec.name + "__registry"] = {"config": promotion}
    return defs.resolve_job_def(f"train_{spec.name}").execute_in_process(
        run_config={**QUIET, "ops": ops},
        raise_on_error=False,
        instance=instance,
    )


def run_op_job(env: dict, job: dg.JobDefinition, op: str, config: dict):
    return job.execute_in_process(
        run_config={**QUIET, "ops": {op: {"config": config}}},
        resources=env,
        raise_on_error=False,
    )


def aliases(env) -> dict:
    registry = env["mlflow_registry"].registry()
    return {
        a: registry.alias_version(SPEC.name, a)
        for a in ("champion", "challenger", "previous_champion")
    }


def gate_of(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_first_model_becomes_champion_with_everything_recorded(env):
    result = run_train(env)
    assert result.success
    gate = gate_of(result)
    assert gate.passed and gate.metadata["champion_version"].value == "none"
    assert gate.metadata["holdout_roc_auc"].value >= SPEC.gate.floors["roc_auc"].min
    assert aliases(env) == {"champion": "1", "challenger": "1", "previous_champion": None}

    registry = env["mlflow_registry"].registry()
    tags = registry.version_tags(SPEC.name, "1")
    assert tags["gate_passed"] == "true" and len(tags["artifact_sha256"]) == 64
    # The gate signed it (artifact + gate result) and the SBOM of its software is beside it.
    assert len(tags["signed_by"]) == 16 and len(tags["sbom_sha256"]) == 64
    with registry.verified_download(SPEC.name, "1") as (_, signed):
        assert signed.gate["passed"] is True and signed.version == "1"
    assert tags["dagster_run_id"] == result.run_id and tags["data_digest"]
    run = registry.client.get_run(tags["mlflow_run_id"])
    assert run.data.params["max_iter"] == "200"
    assert "holdout_roc_auc" in run.data.metrics and "train_rows" in run.data.metrics
    assert run.inputs.dataset_inputs, "training data is logged with mlflow.data"
    artifacts = {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    assert {"model_card.md", "gate"} <= artifacts
    card = registry.client.download_artifacts(run.info.run_id, "model_card.md")
    text = Path(card).read_text()
    assert "## Lineage" in text and tags["data_digest"] in text and "## Limitations" in text

    log = audit_log(env["warehouse"], SPEC.name)
    assert list(log["alias"]) == ["challenger", "champion"]
    assert list(log["to_version"]) == ["1", "1"]
    assert set(log["dagster_run_id"]) == {result.run_id}
    assert json.loads(log["gate_results"].iloc[1])["passed"] is True


def observations(instance, run_id: str, key: list[str]) -> list[dict]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)
    return [
        {
            k: v.value
            for k, v in e.dagster_event.asset_observation_data.asset_observation.metadata.items()
        }
        for e in events
        if e.dagster_event.asset_key == dg.AssetKey(key)
    ]


def test_rejected_challenger_is_an_outcome_not_a_failure(env):
    """The gate rejects a degraded challenger: the run succeeds, the version is tagged rejected
    with the failed checks, nothing is promoted, the champion stays, and no failure (so no
    incident) is recorded; the UI shows a WARN check and an observation saying so."""
    assert run_train(env).success
    with dg.instance_for_test() as instance:
        bad = run_train(env, training={"shuffle_labels": True}, instance=instance)
        assert bad.success, "a rejection is an outcome, not a failed run"
        gate = gate_of(bad)
        assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
        assert gate.metadata["outcome"].value == GATE_REJECTED
        failed = gate.metadata["failed_checks"].value
        assert "floor:roc_auc" in failed and "vs_champion" in failed
        # Promotion is skipped: the champion asset does not materialize, it records why.
        assert not [
            e for e in bad.get_asset_materialization_events() if e.asset_key.path[-1] == "registry"
        ]
        (seen,) = observations(instance, bad.run_id, [SPEC.name, "registry"])
        assert seen["rejected_version"] == "2" and seen["champion_version"] == "1"
        assert "floor:roc_auc" in seen["failed_checks"]
        # No failure event: the run-failure sensor (incidents) has nothing to react to.
        failures = instance.get_records_for_run(
            bad.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        assert failures == []
        assert instance.get_run_by_id(bad.run_id).status == dg.DagsterRunStatus.SUCCESS
    # A rejected version never becomes challenger (nothing shadows or canaries it).
    assert aliases(env) == {"champion": "1", "challenger": "1", "previous_champion": None}
    registry = env["mlflow_registry"].registry()
    tags = registry.version_tags(SPEC.name, "2")
    assert tags["gate_passed"] == "false" and tags["gate_status"] == GATE_REJECTED
    record = VersionRecord.from_tags(tags)
    assert record.rejected and "floor:roc_auc" in record.gate.failed_checks
    # The training run says so too, where the MLflow UI lists runs.
    run_tags = registry.client.get_run(record.mlflow_run_id).data.tags
    assert run_tags["gate_status"] == GATE_REJECTED
    assert "floor:roc_auc" in run_tags["gate_failed_checks"].split(",")
    assert "**Gate: rejected**" in run_tags["mlflow.note.content"]
    assert record.shuffle_labels and record.holdout_rows == gate.metadata["holdout_rows"].value
    assert not env["warehouse"].table_exists("ops", "incidents")
    # Nobody can promote it by hand either.
    with pytest.raises(PromotionRefused, match="has not passed its evaluation gate"):
        promote(
            registry, env["warehouse"], SPEC.name, "2", reason="manual", actor="me", run_id="test"
        )
    log = audit_log(env["warehouse"], SPEC.name)
    assert list(zip(log["alias"], log["to_version"], strict=True)) == [
        ("challenger", "1"),
        ("champion", "1"),
    ]


def test_approval_holds_promotion_until_an_approver_signs(env):
    from mlops_platform.registry.jobs import approve_model

    assert run_train(env).success
    held = run_train(env, training={"random_state": 7}, promotion={"require_approval": True})
    assert held.success and gate_of(held).passed
    assert aliases(env)["champion"] == "1"
    registry = env["mlflow_registry"].registry()
    assert registry.version_tags(SPEC.name, "2")["approval"] == "pending"

    refused = run_op_job(
        env,
        approve_model,
        "approve_promotion",
        {"model": SPEC.name, "version": "1", "approver": "ana"},
    )
    assert not refused.success  # v1 is not awaiting approval
    approved = run_op_job(
        env,
        approve_model,
        "approve_promotion",
        {"model": SPEC.name, "version": "2", "approver": "ana"},
    )
    assert approved.success
    assert aliases(env)["champion"] == "2" and aliases(env)["previous_champion"] == "1"
    log = audit_log(env["warehouse"], SPEC.name)
    last = log[log["alias"] == "champion"].iloc[-1]
    assert last["actor"] == "ana" and last["reason"] == "approved by ana"


def test_rollback_restores_the_previous_champion_and_is_audited(env):
    from mlops_platform.registry.jobs import rollback_model

    assert run_train(env).success
    assert run_train(env, training={"random_state": 7}).success
    assert aliases(env)["champion"] == "2"
    rolled = run_op_job(
        env,
        rollback_model,
        "rollback_champion",
        {"model": SPEC.name, "reason": "errors in serving", "actor": "bo"},
    )
    assert rolled.success
    assert aliases(env)["champion"] == "1" and aliases(env)["previous_champion"] is None
    registry = env["mlflow_registry"].registry()
    assert registry.version_tags(SPEC.name, "2")["rolled_back"] == "true"
    log = audit_log(env["warehouse"], SPEC.name)
    log = log[log["alias"] != "challenger"]
    assert len(log) == 5  # champion v1, previous v1, champion v2, rollback: champion, previous
    rollback_rows = log[log["reason"].str.startswith("rollback")]
    assert set(rollback_rows["actor"]) == {"bo"}
    # Nothing further to roll back to: a clear refusal, nothing changed.
    again = run_op_job(
        env, rollback_model, "rollback_champion", {"model": SPEC.name, "reason": "again"}
    )
    assert not again.success and aliases(env)["champion"] == "1"
    # + challenger v1, challenger v2, and v2 removed as challenger by the rollback
    assert len(audit_log(env["warehouse"], SPEC.name)) == 8
    assert aliases(env)["challenger"] is None


def test_cli_rollback_status_and_audit(env, capsys):
    from mlops_platform.cli import main

    assert run_train(env).success
    assert run_train(env, training={"random_state": 7}).success
    main(["model", "status"])
    assert "champion           2" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs --reason"):
        main(["model", "rollback"])
    main(["model", "rollback", "--reason", "latency regression", "--actor", "cy"])
    assert "champion v2 -> v1 (audited)" in capsys.readouterr().out
    assert aliases(env)["champion"] == "1"
    main(["model", "audit"])
    assert "rollback: latency regression" in capsys.readouterr().out
    last = audit_log(env["warehouse"], SPEC.name).iloc[-2]
    assert (last["actor"], last["dagster_run_id"]) == ("cy", "cli")


def test_tampered_artifact_is_refused_and_the_gate_fails_the_run(env):
    """An error is not an outcome: a gate that cannot run fails the run, skips promotion, and
    the alerting sensor turns the failure into an incident."""
    from mlops_platform.alerting.resources import AlertingResource
    from mlops_platform.alerting.sensors import alert_on_run_failure

    assert run_train(env).success
    registry = env["mlflow_registry"].registry()
    source = registry.client.get_model_version(SPEC.name, "1").source
    model_id = source.split("/")[-1]
    (skops_file,) = Path(registry.artifact_root).rglob(f"{model_id}/artifacts/model.skops")
    skops_file.write_bytes(skops_file.read_bytes() + b"tampered")
    with pytest.raises(TamperedArtifactError, match="does not match the registered"):
        registry.load_verified(SPEC.name, "1")
    # The next gate must load the champion to compare: it cannot, so the run fails.
    with dg.instance_for_test() as instance:
        result = run_train(env, training={"random_state": 7}, instance=instance)
        assert not result.success
        assert not result.get_asset_check_evaluations()
        (failure,) = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        with dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=failure.event_log_entry.dagster_event,
            resources={"warehouse": env["warehouse"], "alerting": AlertingResource()},
        ) as context:
            alert_on_run_failure(context.for_run_failure())
    assert aliases(env)["champion"] == "1"
    incidents = env["warehouse"].read_table("ops", "incidents")
    assert list(incidents["dagster_run_id"]) == [result.run_id]


def test_latency_budget_is_enforced(env):
    gate = SPEC.gate.model_copy(update={"latency_single_row_ms": 0.001})
    strict = SPEC.model_copy(update={"gate": gate})
    result = run_train(env, spec=strict)
    assert result.success  # a rejection, not an error
    evaluation = gate_of(result)
    assert not evaluation.passed
    assert evaluation.metadata["failed_checks"].value == "latency:single_row"
    assert aliases(env)["champion"] is None


def test_second_spec_runs_on_the_same_pipeline(env):
    spec = relaxed(load_spec("flight_delay_minutes"))
    result = run_train(env, spec=spec)
    assert result.success
    gate = gate_of(result)
    assert gate.passed and 0 < gate.metadata["holdout_mae"].value < 40
    registry = env["mlflow_registry"].registry()
    assert registry.alias_version(spec.name, "champion") == "1"
    assert registry.alias_version(SPEC.name, "champion") is None


def test_batch_scores_are_daily_partitions_replaced_on_rerun(env):
    from mlops_platform.scoring.assets import build_scores_asset

    scores = build_scores_asset(SPEC)
    with dg.instance_for_test() as instance:
        first = dg.materialize(
            [scores],
            partition_key="2013-02-09",
            resources=env,
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
        )
        assert not first.success  # no champion yet: a clear failure, nothing scored
        assert run_train(env).success
        for day in ("2013-02-09", "2013-02-10", "2013-02-09"):
            result = dg.materialize(
                [scores], partition_key=day, resources=env, instance=instance, run_config=QUIET
            )
            assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["replaced_rows"].value == metadata["rows"].value > 500
        # A range runs as one run (what `dagster asset materialize --partition-range` does).
        ranged = dg.materialize(
            [scores],
            resources=env,
            instance=instance,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": "2013-02-07",
                "dagster/asset_partition_range_end": "2013-02-08",
            },
        )
        assert ranged.success
        events = ranged.get_asset_materialization_events()
        assert sorted(e.partition for e in events) == ["2013-02-07", "2013-02-08"]
        assert events[0].materialization.metadata["days"].value == 2
    table = env["warehouse"].query(
        "SELECT CAST(event_date AS DATE) AS day, count(*) AS n, "
        "count(DISTINCT (carrier, flight, origin)) AS k, min(model_version) AS v, "
        "max(model_version) AS w, avg(score) AS s FROM scores.flight_delay GROUP BY 1 ORDER BY 1"
    )
    assert [str(d)[:10] for d in table["day"]] == [
        "2013-02-07",
        "2013-02-08",
        "2013-02-09",
        "2013-02-10",
    ]
    assert (table["n"] == table["k"]).all(), "a re-run replaces its day, never appends"
    assert set(table["v"]) == set(table["w"]) == {"1"}
    assert table["s"].between(0.01, 0.99).all()


def test_monitoring_assets_report_drift_and_late_label_performance(env):
    from mlops_platform.monitoring.assets import build_monitoring_assets
    from mlops_platform.scoring.assets import build_scores_asset

    assert run_train(env).success
    scores = build_scores_asset(SPEC)
    drift, performance, _ = build_monitoring_assets(SPEC)
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [scores],
            resources=env,
            instance=instance,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": "2013-02-03",
                "dagster/asset_partition_range_end": "2013-02-09",
            },
        ).success
        result = dg.materialize(
            [drift, performance],
            partition_key="2013-02-09",
            resources=env,
            instance=instance,
            run_config=QUIET,
        )
        assert result.success
        events = {
            e.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
    report = events["drift"]
    assert 0 <= report["drift_share"].value <= 1 and report["current_rows"].value > 5000
    assert Path(report["report"].value).stat().st_size > 100_000  # Evidently's HTML
    assert "psi_temp" in report
    registry = env["mlflow_registry"].registry()
    run = registry.client.get_run(report["mlflow_run_id"].value)
    assert "drift_share" in run.data.metrics
    quality = events["performance"]
    assert quality["labelled_rows"].value > 4000 and 0.5 < quality["roc_auc"].value < 1
    # Metadata reads as a person compares it: four decimals (each value rounded on its own).
    assert quality["performance_drop"].value == pytest.approx(
        quality["baseline"].value - quality["roc_auc"].value, abs=1.5e-4
    )
    assert all(
        m.value == round(m.value, 4)
        for m in (*quality.values(), *report.values())
        if isinstance(m.value, float) and m.value == m.value
    )
    # The drop comes with its bootstrap interval; the checks keep each day's verdict (WARN).
    assert quality["drop_ci_low"].value < quality["performance_drop"].value
    assert quality["drop_ci_high"].value > quality["performance_drop"].value
    assert isinstance(quality["significant_drop"].value, bool)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"drift_share", "live_performance"}
    assert all(c.severity == dg.AssetCheckSeverity.WARN for c in checks.values())
    assert checks["live_performance"].metadata["partition"].value == "2013-02-09"
