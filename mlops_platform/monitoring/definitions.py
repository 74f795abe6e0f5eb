"""The monitoring package's definitions, per spec: the drift report and the performance on late
labels with their `monitor_<spec>` job; the retraining sensor; and the cycle, the `daily_<spec>`
job (ingest, features, score, monitor one partition: a day or a month, the domain's cadence)
with its trigger: a schedule on the wall clock or a sensor on the replay clock (`trigger`,
chosen by the profile). Every partitioned asset and job of a spec has its domain's partitions,
so specs of domains with different cadences live in one code location."""

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import dagster as dg

from mlops_platform.asset_keys import FEATURES, SCORES, stage_key
from mlops_platform.domains import domain_for
from mlops_platform.domains.partitions import PartitionsDefinition
from mlops_platform.ingestion.assets import ingestion_selection
from mlops_platform.monitoring.assets import build_monitoring_assets
from mlops_platform.monitoring.cycle_sensor import build_cycle_schedule, build_cycle_sensor
from mlops_platform.monitoring.sensors import build_retrain_sensor
from mlops_platform.scoring.assets import spec_partitions
from mlops_platform.specs import ModelSpec


def daily_job(
    spec: ModelSpec,
    monitoring: Sequence[dg.AssetsDefinition],
    partitions: PartitionsDefinition,
):
    """One partition for `spec`, in asset-graph order: ingest (with the blocking contracts),
    features, then score and monitor the partition's period."""
    each = "day" if domain_for(spec).partitions.cadence == "daily" else "month"
    return dg.define_asset_job(
        f"daily_{spec.name}",
        selection=ingestion_selection(domain_for(spec))
        | dg.AssetSelection.assets(stage_key(spec, FEATURES), stage_key(spec, SCORES))
        | dg.AssetSelection.assets(*monitoring),
        description=f"One {each} for {spec.name}, in asset-graph order: ingest (with the "
        f"blocking contracts), features, then score and monitor the partition's {each}. The "
        f"daily_cycle_{spec.name} trigger runs it for the {each} before the clock's.",
    )


def build_defs(
    specs: Sequence[ModelSpec],
    trigger: Literal["schedule", "sensor"] = "sensor",
    until: dt.datetime | dt.date | None = None,
) -> dg.Definitions:
    assets, jobs, sensors, schedules = [], [], [], []
    for spec in specs:
        partitions = spec_partitions(spec, until)
        monitoring = build_monitoring_assets(spec, partitions)
        assets += monitoring
        daily = daily_job(spec, monitoring, partitions)
        jobs += [
            dg.define_asset_job(
                f"monitor_{spec.name}",
                selection=dg.AssetSelection.assets(*monitoring),
                description=f"Drift report and performance on late labels for {spec.name}.",
            ),
            daily,
        ]
        sensors.append(build_retrain_sensor(spec))
        if trigger == "schedule":
            schedules.append(build_cycle_schedule(spec, daily, partitions))
        else:
            sensors.append(build_cycle_sensor(spec, daily, partitions))
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors, schedules=schedules)
