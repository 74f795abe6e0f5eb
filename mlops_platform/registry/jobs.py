"""Governance jobs: approve a held promotion, roll the champion back."""

import dagster as dg
from pydantic import Field

from mlops_platform.domains import enabled_spec_names
from mlops_platform.model import tags as t
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

#: The first enabled spec: the model these jobs act on unless the Launchpad says otherwise.
DEFAULT_MODEL = next(iter(enabled_spec_names()), "")


class ApprovalConfig(dg.Config):
    model: str = Field(default=DEFAULT_MODEL, description="registered model name")
    version: str = Field(description="the version awaiting approval")
    approver: str = Field(description="the person approving (recorded in the audit log)")


class RollbackConfig(dg.Config):
    model: str = Field(default=DEFAULT_MODEL, description="registered model name")
    reason: str = Field(description="why (recorded in the audit log)")
    actor: str = Field(default="on-call", description="who rolls back")


@dg.op(pool=WAREHOUSE_POOL)
def approve_promotion(
    context: dg.OpExecutionContext,
    config: ApprovalConfig,
    warehouse: Warehouse,
    mlflow_registry: MLflowResource,
) -> None:
    """Promote a version whose gate passed and whose promotion is awaiting approval."""
    from mlops_platform.registry.promotion import PromotionRefused, promote

    registry = mlflow_registry.registry()
    tags = registry.version_tags(config.model, config.version)
    if tags.get(t.APPROVAL) != t.APPROVAL_PENDING:
        raise PromotionRefused(
            f"{config.model} v{config.version} is not awaiting approval "
            f"(approval={tags.get(t.APPROVAL)!r})"
        )
    promote(
        registry,
        warehouse,
        config.model,
        config.version,
        reason=f"approved by {config.approver}",
        actor=config.approver,
        run_id=context.run.run_id,
    )
    registry.set_version_tags(
        config.model,
        config.version,
        {t.APPROVAL: t.APPROVAL_APPROVED, t.APPROVED_BY: config.approver},
    )
    context.log.info(
        f"{config.model} v{config.version} is champion (approved by {config.approver})"
    )


@dg.op(pool=WAREHOUSE_POOL)
def rollback_champion(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    warehouse: Warehouse,
    mlflow_registry: MLflowResource,
) -> None:
    """Champion goes back to the previous champion; audited."""
    from mlops_platform.registry.promotion import rollback

    changes = rollback(
        mlflow_registry.registry(),
        warehouse,
        config.model,
        reason=config.reason,
        actor=config.actor,
        run_id=context.run.run_id,
    )
    context.log.info(
        f"{config.model}: champion v{changes[0].from_version} -> v{changes[0].to_version}"
    )


@dg.job(description="Approve a promotion held for approval (config: model, version, approver).")
def approve_model():
    approve_promotion()


@dg.job(description="Roll the champion back to the previous champion (config: model, reason).")
def rollback_model():
    rollback_champion()
