"""One pipeline per model spec: features -> challenger (+ gate) -> champion, and its job.

Adding a model means adding a spec file; this builds the same assets for it.
"""

import dagster as dg

from mlops_platform.domains import domain_for
from mlops_platform.evaluation.checks import build_gate_check
from mlops_platform.features.assets import build_feature_asset
from mlops_platform.ingestion.assets import ingestion_selection
from mlops_platform.monitoring.assets import build_monitoring_assets
from mlops_platform.monitoring.cycle_sensor import build_cycle_sensor
from mlops_platform.monitoring.sensors import build_retrain_sensor
from mlops_platform.registry.assets import build_champion_asset
from mlops_platform.scoring.assets import DAILY, build_scores_asset
from mlops_platform.specs import ModelSpec, enabled_specs
from mlops_platform.training.assets import build_model_asset


def model_pipeline(spec: ModelSpec) -> dg.Definitions:
    assets = [build_feature_asset(spec), build_model_asset(spec), build_champion_asset(spec)]
    job = dg.define_asset_job(
        f"train_{spec.name}",
        selection=dg.AssetSelection.groups(spec.name),
        description=f"Features -> train -> evaluation gate -> promotion for {spec.name}.",
    )
    scores = build_scores_asset(spec)
    scoring_job = dg.define_asset_job(
        f"score_{spec.name}",
        selection=dg.AssetSelection.assets(scores),
        partitions_def=DAILY,
        description=f"Score one day's rows with the {spec.name} champion (daily partitions; "
        "backfill from the UI or `dagster job backfill`).",
    )
    features_job = dg.define_asset_job(
        f"features_{spec.name}",
        selection=dg.AssetSelection.assets(assets[0]),
        description=f"Rebuild the {spec.name} feature table (new rows, late labels).",
    )
    monitoring = build_monitoring_assets(spec)
    monitoring_job = dg.define_asset_job(
        f"monitor_{spec.name}",
        selection=dg.AssetSelection.assets(*monitoring),
        partitions_def=DAILY,
        description=f"Drift report and performance on late labels for {spec.name} (daily).",
    )
    daily_job = dg.define_asset_job(
        f"daily_{spec.name}",
        selection=ingestion_selection(domain_for(spec))
        | dg.AssetSelection.assets(assets[0], scores, *monitoring),
        partitions_def=DAILY,
        description=f"One replay day for {spec.name}, in asset-graph order: ingest (with the "
        "blocking contracts), features, then score and monitor the partition's day. The "
        f"daily_cycle_{spec.name} sensor runs it for yesterday as the clock advances.",
    )
    return dg.Definitions(
        assets=[*assets, scores, *monitoring],
        asset_checks=[build_gate_check(spec)],
        jobs=[job, scoring_job, monitoring_job, features_job, daily_job],
        sensors=[build_retrain_sensor(spec), build_cycle_sensor(spec, daily_job)],
    )


def model_pipelines() -> dg.Definitions:
    """The pipelines of every enabled spec (`MLOPS_MODEL_SPECS`)."""
    return dg.Definitions.merge(*(model_pipeline(spec) for spec in enabled_specs()))
