"""Feature tables, one per model spec: `features.<spec>` in the warehouse."""

import dagster as dg

from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import Warehouse
from mlops_platform.warehouse.pool import WAREHOUSE_POOL

RAW_INPUTS = ("flights", "weather", "planes")


def build_feature_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=["features", spec.name],
        deps=[dg.AssetKey(["raw", table]) for table in RAW_INPUTS],
        group_name=spec.name,
        kinds={"pandas"},
        description=f"Point-in-time features and late-arriving labels for {spec.name}.",
        pool=WAREHOUSE_POOL,
    )
    def feature_table(context: dg.AssetExecutionContext, warehouse: Warehouse):
        from mlops_platform.features.build import LABEL, build_feature_table

        table = build_feature_table(
            warehouse.read_table("raw", "flights"),
            warehouse.read_table("raw", "weather"),
            warehouse.read_table("raw", "planes"),
            spec,
        )
        warehouse.replace_table("features", spec.name, table)
        labelled = table[table[LABEL].notna()]
        return dg.MaterializeResult(
            metadata={
                "rows": len(table),
                "labelled_rows": len(labelled),
                "first_flight_date": str(table["flight_date"].min().date()),
                "last_flight_date": str(table["flight_date"].max().date()),
                "label_rate": float(labelled[LABEL].mean()) if len(labelled) else 0.0,
                "table": f"features.{spec.name}",
            }
        )

    return feature_table
