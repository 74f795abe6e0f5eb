"""Moving aliases under governance rules, each move audited (`audit.py`).

- `challenger` and `champion` only ever point to versions whose pipeline signature verifies
  (artifact + passed gate result, `signing.py`), whoever asks: a `gate_passed` tag alone is not
  trusted, since anyone with registry access can write it.
- Reasons are validated, and the model's aliases are locked, before anything moves.
- A rolled-back or rejected version does not stay `challenger`.
"""

from __future__ import annotations

import json
import logging

from mlops_platform.model import tags as t
from mlops_platform.registry.audit import (
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    AliasChange,
    PromotionRefused,
    audit_log,
    confirm,
    flush,
    governance_lock,
    journal,
    new_change,
    resolve_intents,
    validate_reason,
    withdraw,
)
from mlops_platform.registry.store import CHALLENGER, CHAMPION, PREVIOUS, ModelRegistry
from mlops_platform.warehouse import WarehouseStore

__all__ = [
    "AUDIT_SCHEMA",
    "AUDIT_TABLE",
    "AliasChange",
    "PromotionRefused",
    "audit_log",
    "promote",
    "rollback",
]

log = logging.getLogger("mlops.registry")
#: Version tag: which champion a version replaced when it was promoted (rollback's fallback).
REPLACED_TAG = t.REPLACED_CHAMPION


def record_change(
    registry: ModelRegistry,
    warehouse: WarehouseStore,
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    *,
    reason: str,
    actor: str,
    run_id: str,
    gate: dict | None = None,
) -> AliasChange:
    """Journal the change, move (or remove) the alias, then write the audit row.

    If the alias cannot move, the journal entry is withdrawn and the error raised; if the
    warehouse cannot take the row now, it stays journalled and lands with the next write."""
    reason = validate_reason(reason)
    change = new_change(model, alias, from_version, to_version, reason, actor, run_id, gate)
    with governance_lock(model, warehouse):
        resolve_intents(warehouse, registry, model)
        journal(warehouse, change.row())
        try:
            if to_version is None:
                registry.delete_alias(model, alias)
            else:
                registry.set_alias(model, alias, to_version)
        except BaseException:
            withdraw(warehouse, change.change_id)
            raise
        confirm(warehouse, change.change_id)
        change = change.settled(queued=flush(warehouse, registry) > 0)
    # Mirrors on the registry, for people browsing MLflow (the audit table is the record).
    registry.client.set_registered_model_tag(model, t.audit_last(alias), json.dumps(change.row()))
    if to_version is not None:
        registry.set_version_tags(
            model, to_version, t.alias_tags(alias, change.changed_at, actor, reason, run_id)
        )
    return change


def verified_gate(registry: ModelRegistry, model: str, version: str) -> dict:
    """The signed gate summary of a version, or `PromotionRefused` saying why not."""
    from mlops_platform.registry.signing import SignatureError
    from mlops_platform.registry.store import (
        TamperedArtifactError,
        UnsafeArtifactError,
        UntrustedTypesError,
    )

    tags = registry.version_tags(model, version)
    if tags.get(t.GATE_PASSED) != "true":
        raise PromotionRefused(
            f"{model} v{version} has not passed its evaluation gate "
            f"(gate_passed={tags.get(t.GATE_PASSED)!r})"
        )
    try:
        with registry.verified_download(model, version) as (_, record):
            pass
    except (SignatureError, TamperedArtifactError, UnsafeArtifactError, UntrustedTypesError) as exc:
        raise PromotionRefused(f"{model} v{version} cannot move: {exc}") from None
    return record.gate


def admit_challenger(
    registry: ModelRegistry, warehouse: WarehouseStore, model: str, version: str, *, run_id: str
) -> AliasChange | None:
    """A version that passed its gate (signature verified) becomes `challenger`."""
    gate = verified_gate(registry, model, version)
    with governance_lock(model, warehouse):
        current = registry.alias_version(model, CHALLENGER)
        if current == version:
            return None
        return record_change(
            registry,
            warehouse,
            model,
            CHALLENGER,
            current,
            version,
            reason="passed evaluation gate",
            actor="evaluation-gate",
            run_id=run_id,
            gate=gate,
        )


def promote(
    registry: ModelRegistry,
    warehouse: WarehouseStore,
    model: str,
    version: str,
    *,
    reason: str,
    actor: str,
    run_id: str,
) -> list[AliasChange]:
    """Make `version` the champion, keeping the old one as `previous_champion`."""
    reason = validate_reason(reason)
    gate = verified_gate(registry, model, version)
    with governance_lock(model, warehouse):
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
                    reason=f"replaced by v{version}: {reason}"[:500],
                    actor=actor,
                    run_id=run_id,
                )
            )
        registry.set_version_tags(model, version, {REPLACED_TAG: current or "none"})
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


def _before(
    registry: ModelRegistry, warehouse: WarehouseStore, model: str, previous: str
) -> str | None:
    """Who was champion before `previous` took over (its tag; the audit history for versions
    promoted before the tag existed)."""
    tags = registry.version_tags(model, previous)
    if REPLACED_TAG in tags:
        return None if tags[REPLACED_TAG] == "none" else tags[REPLACED_TAG]
    history = audit_log(warehouse, model)
    took_over = history[
        (history["alias"] == CHAMPION)
        & (history["to_version"] == previous)
        & (history["from_version"].notna())
        & (~history["reason"].str.startswith("rollback"))
    ]
    return took_over["from_version"].iloc[-1] if len(took_over) else None


def rollback(
    registry: ModelRegistry,
    warehouse: WarehouseStore,
    model: str,
    *,
    reason: str,
    actor: str,
    run_id: str,
) -> list[AliasChange]:
    """Champion goes back to `previous_champion`; the rolled-back version stops being
    challenger too."""
    reason = validate_reason(f"rollback: {validate_reason(reason)}"[:500])
    with governance_lock(model, warehouse):
        previous = registry.alias_version(model, PREVIOUS)
        current = registry.alias_version(model, CHAMPION)
        if previous is None:
            raise PromotionRefused(f"{model} has no previous_champion to roll back to")
        verified_gate(registry, model, previous)  # never roll back onto an unsigned version
        changes = [
            record_change(
                registry,
                warehouse,
                model,
                CHAMPION,
                current,
                previous,
                reason=reason,
                actor=actor,
                run_id=run_id,
            )
        ]
        before = _before(registry, warehouse, model, previous)
        before = None if before in (previous, current) else before
        changes.append(
            record_change(
                registry,
                warehouse,
                model,
                PREVIOUS,
                previous,
                before,
                reason=reason,
                actor=actor,
                run_id=run_id,
            )
        )
        if current is not None:
            registry.set_version_tags(
                model, current, {t.ROLLED_BACK: "true", t.ROLLED_BACK_REASON: reason}
            )
            if registry.alias_version(model, CHALLENGER) == current:
                changes.append(
                    record_change(
                        registry,
                        warehouse,
                        model,
                        CHALLENGER,
                        current,
                        None,
                        reason=reason,
                        actor=actor,
                        run_id=run_id,
                    )
                )
    return changes
