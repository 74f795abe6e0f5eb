"""The evaluation gate: a blocking check on each spec's challenger model.

Its verdict is an outcome either way: a rejected challenger is a failed check of severity WARN
(the run succeeds, the promotion step records the rejection and moves nothing). Only a gate that
cannot run (a crash, a missing table, an artifact that does not verify) fails the step, and
then, the check being blocking, the promotion is skipped and the run fails.
"""

import dagster as dg

from mlops_platform.asset_keys import MODEL, stage_key
from mlops_platform.markdown import markdown_table
from mlops_platform.metadata import rounded
from mlops_platform.registry.assets import trained_version
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse


def build_gate_check(spec: ModelSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=stage_key(spec, MODEL),
        name="evaluation_gate",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=(
            f"Gate for {spec.name}: floors {', '.join(spec.gate.floors)}, challenger vs champion "
            f"on {spec.gate.primary_metric}, slices by {', '.join(spec.gate.slice_columns)}, "
            "latency budget. A failure stops promotion."
        ),
    )
    def evaluation_gate(
        context: dg.AssetCheckExecutionContext,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
    ) -> dg.AssetCheckResult:
        from mlops_platform.evaluation.run import gate_rows, run_gate
        from mlops_platform.model.version import VersionRecord

        registry = mlflow_registry.registry()
        version = trained_version(context.instance, spec.name)
        split = VersionRecord.from_tags(registry.version_tags(spec.name, version)).split
        result = run_gate(spec, gate_rows(warehouse, spec, split), registry, version=version)
        challenger = result.challenger
        metadata = {
            "version": challenger.version,
            "champion_version": result.champion.version if result.champion else "none",
            "holdout_rows": challenger.rows,
            "checks": dg.MetadataValue.md(
                markdown_table(
                    [
                        {"check": c.name, "passed": c.passed, "detail": c.detail}
                        for c in result.checks
                    ]
                )
            ),
            "failed_checks": ", ".join(c.name for c in result.failures) or "none",
            **{f"holdout_{k}": float(v) for k, v in challenger.metrics.items()},
            **{f"latency_{k}": float(v) for k, v in challenger.latency_ms.items()},
            "latency_rounds": challenger.latency_rounds,
            **{
                f"latency_ratio_to_champion_{k}": float(v.ratio)
                for k, v in challenger.latency_vs_champion.items()
            },
        }
        if result.champion:
            metadata.update({f"champion_{k}": float(v) for k, v in result.champion.metrics.items()})
            metadata.update(
                {f"champion_latency_{k}": float(v) for k, v in result.champion.latency_ms.items()}
            )
        failed = metadata["failed_checks"]
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=rounded({"outcome": result.summary().status, **metadata}),
            description=(
                f"v{challenger.version} accepted"
                if result.passed
                else f"v{challenger.version} rejected ({failed}): the champion stays"
            ),
        )

    return evaluation_gate
