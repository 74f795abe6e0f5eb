"""Guarded deploys, for real: a champion that passed its gate but is worse on live late labels
is rolled back automatically (audited, an incident naming the runbook); a sound one is not."""

from __future__ import annotations

import dagster as dg

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.model import tags as t
from mlops_platform.monitoring.assets import build_monitoring_assets
from mlops_platform.registry.promotion import audit_log
from mlops_platform.scoring.assets import build_scores_asset
from mlops_platform.specs import Floor
from mlops_platform_tests.helpers import QUIET
from mlops_platform_tests.test_model_lifecycle import SPEC, aliases, env, run_train

__all__ = ["env"]  # the fixture, shared with the lifecycle tests

#: A gate that lets anything through: the guard, not the gate, must catch the bad champion.
LENIENT = SPEC.model_copy(
    update={
        "gate": SPEC.gate.model_copy(
            update={
                "floors": {"roc_auc": Floor(min=0.0), "brier": Floor(max=1.0)},
                "champion_tolerance": 1.0,
                "slice_tolerance": 1.0,
            }
        )
    }
)
DAYS = {
    "dagster/asset_partition_range_start": "2013-02-03",
    "dagster/asset_partition_range_end": "2013-02-09",
}


def guard_day(env, instance) -> dict:
    """Score Feb 3-9 with the current champion, then run the guard for Feb 9."""
    scores = build_scores_asset(SPEC)
    guard = build_monitoring_assets(SPEC)[2]
    resources = {**env, "alerting": AlertingResource()}
    assert dg.materialize(
        [scores], resources=env, instance=instance, run_config=QUIET, tags=DAYS
    ).success
    result = dg.materialize(
        [guard],
        partition_key="2013-02-09",
        resources=resources,
        instance=instance,
        run_config=QUIET,
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_champion_worse_on_live_labels_is_rolled_back_and_a_sound_one_is_not(env):
    warehouse, registry = env["warehouse"], env["mlflow_registry"].registry()
    assert run_train(env).success  # v1
    with dg.instance_for_test() as instance:
        # No previous champion yet: nothing to compare with.
        assert guard_day(env, instance)["status"] == "no guard"

        # v2: a sound retrain on the same data. Compared on the same live rows, not worse.
        assert run_train(env).success
        assert aliases(env)["champion"] == "2"
        sound = guard_day(env, instance)
        assert sound["status"] == "watching", sound
        assert sound["labelled_rows"] > 4000 and "not significant" in sound["verdict"]
        assert aliases(env)["champion"] == "2"

        # v3 learnt nothing (shuffled labels) but the lenient gate passed and promoted it.
        bad = run_train(env, spec=LENIENT, training={"shuffle_labels": True})
        assert bad.success and aliases(env)["champion"] == "3"
        assert registry.version_tags(SPEC.name, "3")["gate_passed"] == "true"
        outcome = guard_day(env, instance)

    assert outcome["status"] == "rolled back", outcome
    assert outcome["champion_metric"] < outcome["previous_metric"] - 0.05
    assert outcome["loss_ci_low"] > 0
    # Back to v2, recorded in the audit log by the guard, with the reason.
    assert aliases(env)["champion"] == "2"
    log = audit_log(warehouse, SPEC.name)
    last = log[log["alias"] == "champion"].iloc[-1]
    assert (last["from_version"], last["to_version"], last["actor"]) == ("3", "2", "deploy-guard")
    assert last["reason"].startswith("rollback: deploy guard: v3 is significantly worse than v2")
    tags = registry.version_tags(SPEC.name, "3")
    assert tags[t.DEPLOY_GUARD] == t.GUARD_ROLLED_BACK and tags[t.ROLLED_BACK] == "true"
    # An incident naming its runbook, with the same reason.
    incidents = warehouse.read_table("ops", "incidents")
    incident = incidents[incidents["incident_id"] == outcome["incident_id"]].iloc[0]
    assert incident["kind"] == "guarded_rollback"
    assert incident["runbook"] == "docs/runbooks/guarded-rollback.md"
    assert "v3 is significantly worse than v2" in incident["message"]
