"""Feature tables, one per model spec: `features.<spec>` in the warehouse.

A run rebuilds only the rows that raw data loaded since the previous build can affect (see
features/incremental.py); its watermarks are this asset's metadata. `full_refresh` in the
Launchpad rebuilds everything.
"""

import dagster as dg

from mlops_platform.asset_keys import FEATURES, stage_attributes
from mlops_platform.domains import domain_for
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse


class FeatureConfig(dg.Config):
    full_refresh: bool = False


def build_feature_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    domain = domain_for(spec)

    @dg.asset(
        **stage_attributes(spec, FEATURES),
        deps=[dg.AssetKey(["raw", table]) for table in domain.feature_inputs],
        kinds={"pandas"},
        description=f"Point-in-time features and late-arriving labels for {spec.name}: one row "
        f"per {domain.entity.singular}, built incrementally from the raw loads since the "
        "previous build.",
        pool=WAREHOUSE_POOL,
    )
    def feature_table(
        context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse
    ):
        from mlops_platform.features.build import write_features
        from mlops_platform.features.incremental import definition_digest, plan_build

        event = context.instance.get_latest_materialization_event(context.asset_key)
        previous = None
        if event is not None and event.asset_materialization is not None:
            previous = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        plan = plan_build(warehouse, spec, previous, config.full_refresh)
        context.log.info(f"features.{spec.name}: {plan.reason}")
        rebuilt = 0
        if plan.full or plan.since is not None:
            # Span by span (features/build.py: write_features): memory follows a span.
            rebuilt = write_features(warehouse, spec, None if plan.full else plan.since)
        summary = warehouse.query(
            f"SELECT count(*) AS n, count({LABEL}) AS labelled, avg({LABEL}) AS label_rate, "
            f"min({EVENT_DATE}) AS first, max({EVENT_DATE}) AS last "
            f"FROM features.{spec.name}"
        ).iloc[0]
        return dg.MaterializeResult(
            metadata={
                "rows": int(summary["n"]),
                "labelled_rows": int(summary["labelled"]),
                "rebuilt_rows": rebuilt,
                "rebuilt_from": str(plan.since) if plan.since else ("all" if plan.full else "-"),
                "build": plan.reason,
                "first_event_date": str(summary["first"].date()),
                "last_event_date": str(summary["last"].date()),
                "label_rate": round(float(summary["label_rate"] or 0.0), 4),
                "table": f"features.{spec.name}",
                "definition": definition_digest(spec),
                **{f"{t}_load_id": v for t, v in plan.watermarks.items()},
            }
        )

    return feature_table
