"""Moving aliases, and the audit trail of every move.

Every alias change is appended to `audit.model_alias_changes` in the warehouse (never updated
or deleted) and mirrored as tags on the registry. A version becomes champion only if its gate
passed (`gate_passed=true` on the version), whoever asks.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from mlops_platform.registry.store import CHAMPION, PREVIOUS, ModelRegistry
from mlops_platform.warehouse import Warehouse

AUDIT_SCHEMA, AUDIT_TABLE = "audit", "model_alias_changes"


class PromotionRefused(RuntimeError):
    """The requested alias change would break a governance rule."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record_change(
    registry: ModelRegistry,
    warehouse: Warehouse,
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    *,
    reason: str,
    actor: str,
    run_id: str,
    gate: dict | None = None,
) -> dict:
    """Move (or remove) an alias, then append the change to the audit log and the registry."""
    if to_version is None:
        registry.delete_alias(model, alias)
    else:
        registry.set_alias(model, alias, to_version)
    change = {
        "changed_at": _now(),
        "model": model,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "reason": reason,
        "gate_results": json.dumps(gate or {}, sort_keys=True, default=str),
        "dagster_run_id": run_id,
        "actor": actor,
    }
    warehouse.append(
        AUDIT_SCHEMA,
        AUDIT_TABLE,
        pd.DataFrame([change]).astype({"from_version": "string", "to_version": "string"}),
    )
    tag = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in change.items()}
    registry.client.set_registered_model_tag(model, f"audit.{alias}.last", json.dumps(tag))
    if to_version is not None:
        registry.set_version_tags(
            model,
            to_version,
            {
                f"{alias}.since": tag["changed_at"],
                f"{alias}.by": actor,
                f"{alias}.reason": reason,
                f"{alias}.dagster_run_id": run_id,
            },
        )
    return change


def audit_log(warehouse: Warehouse, model: str | None = None) -> pd.DataFrame:
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return pd.DataFrame(
            columns=[
                "changed_at",
                "model",
                "alias",
                "from_version",
                "to_version",
                "reason",
                "gate_results",
                "dagster_run_id",
                "actor",
            ]
        )
    sql = f"SELECT * FROM {AUDIT_SCHEMA}.{AUDIT_TABLE}"
    if model:
        return warehouse.query(sql + " WHERE model = :model", {"model": model}).sort_values(
            "changed_at"
        )
    return warehouse.query(sql).sort_values("changed_at")


def promote(
    registry: ModelRegistry,
    warehouse: Warehouse,
    model: str,
    version: str,
    *,
    reason: str,
    actor: str,
    run_id: str,
) -> list[dict]:
    """Make `version` the champion, keeping the old one as `previous_champion`."""
    tags = registry.version_tags(model, version)
    if tags.get("gate_passed") != "true":
        raise PromotionRefused(
            f"{model} v{version} has not passed its evaluation gate "
            f"(gate_passed={tags.get('gate_passed')!r}); it cannot become champion"
        )
    gate = json.loads(tags.get("gate_summary", "{}"))
    current = registry.alias_version(model, CHAMPION)
    if current == version:
        return []
    changes = []
    if current is not None:
        changes.append(
            record_change(
                registry,
                warehouse,
                model,
                PREVIOUS,
                registry.alias_version(model, PREVIOUS),
                current,
                reason=f"replaced by v{version}: {reason}",
                actor=actor,
                run_id=run_id,
            )
        )
    changes.append(
        record_change(
            registry,
            warehouse,
            model,
            CHAMPION,
            current,
            version,
            reason=reason,
            actor=actor,
            run_id=run_id,
            gate=gate,
        )
    )
    return changes


def rollback(
    registry: ModelRegistry,
    warehouse: Warehouse,
    model: str,
    *,
    reason: str,
    actor: str,
    run_id: str,
) -> list[dict]:
    """Champion goes back to `previous_champion`; the alias history decides the one before it."""
    previous = registry.alias_version(model, PREVIOUS)
    current = registry.alias_version(model, CHAMPION)
    if previous is None:
        raise PromotionRefused(f"{model} has no previous_champion to roll back to")
    changes = [
        record_change(
            registry,
            warehouse,
            model,
            CHAMPION,
            current,
            previous,
            reason=f"rollback: {reason}",
            actor=actor,
            run_id=run_id,
        )
    ]
    # Who was champion before `previous` took over? That becomes the new fallback.
    history = audit_log(warehouse, model)
    took_over = history[
        (history["alias"] == CHAMPION)
        & (history["to_version"] == previous)
        & (history["from_version"].notna())
        & (~history["reason"].str.startswith("rollback"))
    ]
    before = took_over["from_version"].iloc[-1] if len(took_over) else None
    before = None if before in (previous, current) else before
    changes.append(
        record_change(
            registry,
            warehouse,
            model,
            PREVIOUS,
            previous,
            before,
            reason=f"rollback: {reason}",
            actor=actor,
            run_id=run_id,
        )
    )
    if current is not None:
        registry.set_version_tags(
            model, current, {"rolled_back": "true", "rolled_back_reason": reason}
        )
    return changes
