"""The champion of each spec: the alias `champion`, moved only to a version that passed its gate.

A version the gate rejected is an outcome, not a failure: the promotion step records it (an
observation on `<spec>/registry` naming the failed checks), moves nothing and does not
materialize, so the run succeeds, the champion stays, and nothing downstream runs.
"""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from mlops_platform.asset_keys import MODEL, REGISTRY, stage_attributes, stage_key
from mlops_platform.model import tags as t
from mlops_platform.registry.mlflow_ui import mlflow_version_url
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

if TYPE_CHECKING:
    from mlops_platform.model.version import VersionRecord

# No `from __future__ import annotations` here: Dagster resolves the config class from the
# asset function's annotations.


class PromotionConfig(dg.Config):
    require_approval: bool = Field(
        default=False,
        description="Hold the promotion until an `approve_model` run names an approver "
        "(also on when the model spec requires approval).",
    )
    actor: str = Field(default="dagster", description="Who or what promotes (audit log)")


def trained_version(instance: dg.DagsterInstance, model: str) -> str:
    """The version the pipeline's training step registered last (Dagster's own record, not a
    registry alias anyone could point elsewhere)."""
    event = instance.get_latest_materialization_event(stage_key(model, MODEL))
    if event is None or event.asset_materialization is None:
        raise RuntimeError(f"no trained {model} version to evaluate")
    return str(event.asset_materialization.metadata["version"].value)


def rejection(
    context: dg.AssetExecutionContext,
    model: str,
    version: str,
    record: "VersionRecord",
    champion: str | None,
) -> dg.AssetObservation:
    """What the UI shows for a rejected challenger: an observation on the champion asset."""
    failed = ", ".join(record.gate.failed_checks) or "?"
    kept = f"v{champion}" if champion else "none"
    context.log.warning(
        f"{model} v{version} was rejected by its evaluation gate ({failed}); champion {kept} "
        "stays and nothing is promoted"
    )
    return dg.AssetObservation(
        asset_key=context.asset_key,
        metadata={
            "outcome": "challenger rejected by the evaluation gate; promotion skipped",
            "rejected_version": version,
            "failed_checks": failed,
            "champion_version": champion or "none",
        },
    )


def build_champion_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        **stage_attributes(spec, REGISTRY),
        deps=[stage_key(spec, MODEL)],
        kinds={"mlflow"},
        pool=WAREHOUSE_POOL,
        description=f"The {spec.name} champion: promotion of a challenger that passed its gate.",
        # Not materialized when the gate rejected the challenger (the champion did not change).
        output_required=False,
    )
    def champion(
        context: dg.AssetExecutionContext,
        config: PromotionConfig,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
    ):
        from mlops_platform.model.version import VersionRecord
        from mlops_platform.registry.promotion import admit_challenger, promote
        from mlops_platform.registry.store import CHAMPION

        registry = mlflow_registry.registry()
        # The version this pipeline trained and gated (the blocking gate let us run); its
        # signature is verified before it becomes challenger, and again before champion.
        version = trained_version(context.instance, spec.name)
        record = VersionRecord.from_tags(registry.version_tags(spec.name, version))
        if record.rejected:
            yield rejection(
                context, spec.name, version, record, registry.alias_version(spec.name, CHAMPION)
            )
            return
        admit_challenger(registry, warehouse, spec.name, version, run_id=context.run.run_id)
        if spec.approval.required or config.require_approval:
            registry.set_version_tags(spec.name, version, {t.APPROVAL: t.APPROVAL_PENDING})
            context.log.warning(
                f"{spec.name} v{version} passed its gate and awaits approval: run the "
                f"`approve_model` job with model={spec.name}, version={version}, approver=<name>"
            )
            yield dg.MaterializeResult(
                metadata={
                    "champion_version": registry.alias_version(spec.name, CHAMPION) or "none",
                    "awaiting_approval": version,
                }
            )
            return
        reason = promotion_reason(context.run.tags, context.run.run_id)
        changes = promote(
            registry,
            warehouse,
            spec.name,
            version,
            reason=reason,
            actor=config.actor,
            run_id=context.run.run_id,
        )
        yield dg.MaterializeResult(
            metadata={
                "champion_version": version,
                "champion": dg.MetadataValue.url(mlflow_version_url(spec.name, version)),
                "previous_champion": changes[0].to_version if len(changes) == 2 else "none",
                "alias_changes": len(changes),
            }
        )

    return champion


def promotion_reason(run_tags: dict[str, str], run_id: str) -> str:
    """The audit reason of an automatic promotion: the gate, and the retrain's trigger reason
    when the retraining sensor started the run, cut to fit the audit log's bound (a drift
    reason lists every drifted column and can exceed it; the run's `mlops/reason` tag, which the
    cut reason points to, keeps up to 1,000 characters of it). A promotion must never fail on its
    own generated text."""
    from mlops_platform.registry.audit import REASON_MAX_CHARS

    reason = "passed evaluation gate"
    trigger_reason = run_tags.get(t.RUN_REASON)
    if not trigger_reason:
        return reason
    printable = "".join(c if c.isprintable() else " " for c in trigger_reason)
    reason += f"; retrained because {' '.join(printable.split())}"
    if len(reason) <= REASON_MAX_CHARS:
        return reason
    pointer = f"… (the trigger's reason: tag {t.RUN_REASON} of Dagster run {run_id})"
    return reason[: REASON_MAX_CHARS - len(pointer)].rstrip() + pointer
