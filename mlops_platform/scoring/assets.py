"""`scores/<spec>`: daily partitions of batch scores, replaced (never appended) on re-runs."""

import dagster as dg

from mlops_platform.domains import enabled_domains
from mlops_platform.domains.partitions import partitions_def
from mlops_platform.model.columns import EVENT_DATE
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

DAILY = partitions_def(enabled_domains()[0])
#: The one backfill policy of every daily-partitioned asset (scores, drift, performance, guard):
#: a job takes one policy for all its assets. A range of days is one run, done day by day.
DAILY_BACKFILL = dg.BackfillPolicy.single_run()


def build_scores_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=["scores", spec.name],
        deps=[dg.AssetKey(["features", spec.name])],
        partitions_def=DAILY,
        group_name="scoring",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,  # DuckDB has one writer: partitions run one at a time
        description=f"Each day's rows of features.{spec.name} scored by its champion.",
        metadata={"partition_expr": EVENT_DATE},
        # A range of days (a backfill, or `dagster asset materialize --partition-range`) runs
        # as one run that scores day by day.
        backfill_policy=DAILY_BACKFILL,
    )
    def batch_scores(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
    ) -> dg.MaterializeResult:
        import datetime as dt

        from mlops_platform.registry.store import CHAMPION
        from mlops_platform.scoring.score import score_day

        window = context.partition_time_window
        registry = mlflow_registry.registry()
        version = registry.alias_version(spec.name, CHAMPION)
        if version is None:
            raise RuntimeError(f"{spec.name} has no champion to score with")
        if not warehouse.table_exists("features", spec.name):
            raise RuntimeError(f"features.{spec.name} does not exist: run train_{spec.name}")
        model = registry.load_verified(spec.name, version)
        rows = replaced = 0
        day = window.start.date()
        while day < window.end.date():
            where = f"CAST({EVENT_DATE} AS DATE) = DATE '{day}'"
            features = warehouse.read_table("features", spec.name, where=where)
            scored = score_day(model, version, features, day, spec)
            replaced += warehouse.replace_rows("scores", spec.name, scored, where=where)
            rows += len(scored)
            context.log.info(f"{day}: {len(scored)} rows scored by v{version}")
            day += dt.timedelta(days=1)
        return dg.MaterializeResult(
            metadata={
                "rows": rows,
                "replaced_rows": replaced,
                "days": (window.end - window.start).days,
                "model_version": version,
                "table": f"scores.{spec.name}",
            }
        )

    return batch_scores
