"""When to retrain: the decision the sensor applies to the latest monitoring results (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mlops_platform.model import tags as t
from mlops_platform.specs import ModelSpec


@dataclass
class Decision:
    fire: bool
    reason: str
    tags: dict[str, str] = field(default_factory=dict)


def decide_retrain(
    spec: ModelSpec,
    day: str,
    drift: dict | None,
    performance: dict | None,
    last_trigger_day: str | None,
) -> Decision:
    """Fire when drift or the performance drop crosses the spec's thresholds, unless a retrain
    was triggered less than `cooldown_days` before `day` (the same episode)."""
    reasons, trigger = [], None
    if drift is not None:
        share, prediction = drift.get("drift_share"), drift.get("prediction_drift")
        if share is not None and share > spec.drift.share_threshold:
            reasons.append(
                f"drift share {share:.2f} > {spec.drift.share_threshold} "
                f"({drift.get('drifted_features', '?')})"
            )
            trigger = "drift"
        if prediction is not None and prediction > spec.drift.prediction_threshold:
            reasons.append(f"prediction drift {prediction:.3f} > {spec.drift.prediction_threshold}")
            trigger = trigger or "prediction_drift"
    if performance is not None:
        drop = performance.get("performance_drop")
        if drop is not None and drop == drop and drop > spec.drift.performance_drop:
            reasons.append(
                f"{spec.gate.primary_metric} dropped {drop:.3f} > {spec.drift.performance_drop}"
            )
            trigger = trigger or "performance"
    if not reasons:
        return Decision(False, f"{day}: within thresholds")
    if last_trigger_day is not None:
        since = (dt.date.fromisoformat(day) - dt.date.fromisoformat(last_trigger_day)).days
        if 0 <= since < spec.drift.cooldown_days:
            return Decision(
                False,
                f"{day}: {'; '.join(reasons)} — but a retrain was triggered "
                f"on {last_trigger_day} ({since} < {spec.drift.cooldown_days} days)",
            )
    reason = "; ".join(reasons)
    return Decision(
        True,
        reason,
        {
            t.RUN_TRIGGER: trigger,
            t.RUN_REASON: reason[:1000],
            t.RUN_MONITORED_DAY: day,
            t.RUN_RUNBOOK: "docs/runbooks/drift-alert.md",
        },
    )
