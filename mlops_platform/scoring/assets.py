"""`<spec>/scores`: batch scores partitioned by the spec's domain (a day or a month), replaced
(never appended) on re-runs."""

import datetime as dt

import dagster as dg

from mlops_platform.asset_keys import FEATURES, SCORES, stage_attributes, stage_key
from mlops_platform.domains import domain_for
from mlops_platform.domains.partitions import PartitionsDefinition, partitions_def
from mlops_platform.model.columns import EVENT_DATE
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

#: Partitions per run of a backfill: a range of partitions is split into runs of at most this
#: many (a week of days, seven months of a monthly domain). Several runs are what lets a backfill
#: spread over the Celery workers: a run's step for a range is one task, so a range in one run
#: keeps one worker busy whatever the number of workers. Fewer, larger runs pay fewer run starts
#: (a run process imports the code location, ~4 s of CPU); see docs/capacity.md.
BACKFILL_PARTITIONS_PER_RUN = 7

#: The one backfill policy of every partitioned asset (scores, drift, performance, guard): a
#: job takes one policy for all its assets.
BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_PARTITIONS_PER_RUN)


def with_backfill_policy(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """`asset` with the one backfill policy, set on the definition: the `@asset` decorator's
    `backfill_policy` parameter is marked beta (a warning on every load), the policy is not."""
    return asset.with_attributes(backfill_policy=BACKFILL)


def spec_partitions(
    spec: ModelSpec, until: dt.datetime | dt.date | None = None
) -> PartitionsDefinition:
    """The partitions of a spec's scores and monitoring: its domain's (cadence, range,
    timezone), ending at `until`'s last complete period if given (see domains/partitions.py)."""
    return partitions_def(domain_for(spec), until)


def build_scores_asset(
    spec: ModelSpec, partitions: PartitionsDefinition | None = None
) -> dg.AssetsDefinition:
    """`<spec>/scores` on `partitions` (default: its domain's, up to Dagster's clock)."""
    partitions = partitions or spec_partitions(spec)

    @dg.asset(
        **stage_attributes(spec, SCORES),
        deps=[stage_key(spec, FEATURES)],
        partitions_def=partitions,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,  # DuckDB has one writer: partitions run one at a time
        description=f"Each partition's rows of features.{spec.name} scored by its champion.",
        metadata={"partition_expr": EVENT_DATE},
        # A run for a range of partitions (a backfill's run, or `dagster asset materialize
        # --partition-range`) scores the whole range with one read and one replace.
    )
    def batch_scores(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
    ) -> dg.MaterializeResult:
        from mlops_platform.registry.store import CHAMPION
        from mlops_platform.scoring.score import score_rows

        window = context.partition_time_window
        first, end = window.start.date(), window.end.date()
        registry = mlflow_registry.registry()
        version = registry.alias_version(spec.name, CHAMPION)
        if version is None:
            raise RuntimeError(f"{spec.name} has no champion to score with")
        if not warehouse.table_exists("features", spec.name):
            raise RuntimeError(f"features.{spec.name} does not exist: run train_{spec.name}")
        model = registry.load_verified(spec.name, version)
        # The whole window in one read and one replace, whatever the cadence or range.
        day = f"CAST({EVENT_DATE} AS DATE)"
        where = f"{day} >= DATE '{first}' AND {day} < DATE '{end}'"
        features = warehouse.read_table("features", spec.name, where=where)
        scored = score_rows(model, version, features, spec)
        replaced = warehouse.replace_rows("scores", spec.name, scored, where=where)
        days = (end - first).days
        context.log.info(f"{first}..{end}: {len(scored)} rows of {days} days scored by v{version}")
        return dg.MaterializeResult(
            metadata={
                "rows": len(scored),
                "replaced_rows": replaced,
                "days": days,
                "first_day": str(first),
                "last_day": str(end - dt.timedelta(days=1)),
                "model_version": version,
                "table": f"scores.{spec.name}",
            }
        )

    return with_backfill_policy(batch_scores)
