"""Guarded deploys: a new champion is watched on live late labels (no Dagster).

A gate judges a challenger on last week's held-out rows; the world it then serves can differ.
For `drift.guard_days` after a promotion, the days the new champion scored (its rows in
`scores.<spec>`) that have labels are batch-scored by both versions, the new champion and the
previous one, and compared on the same rows with the paired bootstrap rule
(`significance.paired_verdict`, material loss = the gate's `champion_tolerance`). If the new one
is significantly worse it is rolled back (`registry.promotion.rollback`: audited), an incident
names the runbook, and the version is tagged with the reason.
"""

from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass

import numpy as np

from mlops_platform.alerting.incidents import RUNBOOKS
from mlops_platform.model import tags as t
from mlops_platform.model.columns import LABEL, MODEL_VERSION
from mlops_platform.model.input import model_input
from mlops_platform.model.scorer import FastScorer
from mlops_platform.monitoring.reference import DAY, days_between
from mlops_platform.monitoring.significance import Verdict, days_of, paired_verdict
from mlops_platform.registry.store import CHAMPION, PREVIOUS, ModelRegistry
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import WarehouseStore
from mlops_platform.warehouse.base import quote

RUNBOOK = RUNBOOKS["guarded_rollback"]
ACTOR = "deploy-guard"


@dataclass
class GuardOutcome:
    status: str  # "no guard", "watching", "passed", "rolled back"
    champion: str | None
    previous: str | None
    verdict: Verdict | None = None
    days: int = 0
    incident_id: str | None = None

    def metadata(self) -> dict:
        meta = {
            "status": self.status,
            "champion_version": self.champion or "none",
            "previous_champion": self.previous or "none",
            "days_since_promotion": self.days,
        }
        if self.verdict is not None:
            meta |= {
                "verdict": self.verdict.describe(),
                "labelled_rows": self.verdict.rows,
                "champion_metric": self.verdict.current,
                "previous_metric": self.verdict.reference,
                "loss": self.verdict.drop,
                "loss_ci_low": self.verdict.low,
                "loss_ci_high": self.verdict.high,
            }
        if self.incident_id:
            meta |= {"incident_id": self.incident_id, "runbook": RUNBOOK}
        return meta


def guard_deploy(
    spec: ModelSpec,
    day: dt.date,
    warehouse: WarehouseStore,
    registry: ModelRegistry,
    *,
    run_id: str,
    webhook_url: str = "",
) -> GuardOutcome:
    """Compare the champion with the previous one on the late labels of the days it scored
    (up to `day`); roll back if it is significantly worse."""
    champion = registry.alias_version(spec.name, CHAMPION)
    previous = registry.alias_version(spec.name, PREVIOUS)
    if spec.drift.guard_days == 0 or champion is None or previous is None:
        return GuardOutcome("no guard", champion, previous)
    tags = registry.version_tags(spec.name, champion)
    if tags.get(t.DEPLOY_GUARD) in (t.GUARD_PASSED, t.GUARD_ROLLED_BACK):
        return GuardOutcome(f"{tags[t.DEPLOY_GUARD]} earlier", champion, previous)
    if not warehouse.table_exists("scores", spec.name):
        return GuardOutcome("watching (nothing scored yet)", champion, previous)
    scored = warehouse.query(
        f"SELECT DISTINCT CAST({DAY} AS DATE) AS d FROM scores.{spec.name} "
        f"WHERE {MODEL_VERSION} = '{int(champion)}' AND CAST({DAY} AS DATE) <= DATE '{day}'"
    )["d"]
    if scored.empty:
        return GuardOutcome("watching (no day scored by it yet)", champion, previous)
    first, last = scored.min(), scored.max()
    first = first.date() if hasattr(first, "date") else first
    last = last.date() if hasattr(last, "date") else last
    days = (day - first).days + 1
    # Only what is compared: the labelled rows' day, label and the model's columns.
    columns = ", ".join(quote(c) for c in dict.fromkeys([DAY, LABEL, *spec.features.columns]))
    features = warehouse.query(
        f"SELECT {columns} FROM features.{quote(spec.name)} "
        f"WHERE {days_between(first, last)} AND {LABEL} IS NOT NULL"
    )
    scored_days = {d.date() if hasattr(d, "date") else d for d in scored}
    rows = features[features[LABEL].notna() & features[DAY].dt.date.isin(scored_days)]
    verdict = None
    if len(rows) >= spec.drift.min_labelled_rows:
        # Both versions score the same rows (verified loads), with the pipeline's numbers.
        x = model_input(rows, spec)
        new, old = _scores(registry, spec, champion, x), _scores(registry, spec, previous, x)
        verdict = paired_verdict(
            spec.gate.primary_metric,
            rows[LABEL].to_numpy(),
            new,
            old,
            min_rows=spec.drift.min_labelled_rows,
            min_drop=spec.gate.champion_tolerance,
            confidence=spec.drift.confidence,
            samples=spec.drift.bootstrap_samples,
            groups=days_of(rows[DAY]),
        )
        if verdict.significant:
            return _roll_back(
                spec, warehouse, registry, champion, previous, verdict, days, run_id, webhook_url
            )
    if days > spec.drift.guard_days:
        registry.set_version_tags(spec.name, champion, {t.DEPLOY_GUARD: t.GUARD_PASSED})
        return GuardOutcome("passed", champion, previous, verdict, days)
    return GuardOutcome("watching", champion, previous, verdict, days)


def _scores(registry: ModelRegistry, spec: ModelSpec, version: str, x) -> np.ndarray:
    """The version's scores of `x` (`model_input`), the verified pipeline's numbers bit for bit
    (`FastScorer.score(exact=True)`; tested), from its trees compiled once: the pipeline spent
    ~60 ms on a week's rows, every day of the guard and for both versions."""
    pipeline = registry.verified_model(spec.name, version)
    scorer = _SCORERS.get(pipeline)
    if scorer is None or scorer.spec != spec:
        scorer = _SCORERS[pipeline] = FastScorer(pipeline, spec)
    return scorer.score(scorer.frame_matrix(x), exact=True)


#: The compiled scorer of each verified pipeline, kept while the registry keeps the pipeline.
_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _roll_back(
    spec: ModelSpec,
    warehouse: WarehouseStore,
    registry: ModelRegistry,
    champion: str,
    previous: str,
    verdict: Verdict,
    days: int,
    run_id: str,
    webhook_url: str,
) -> GuardOutcome:
    from mlops_platform.alerting.incidents import raise_incident
    from mlops_platform.registry.promotion import rollback

    reason = (
        f"deploy guard: v{champion} is significantly worse than v{previous} on live late labels "
        f"of its first {days} days: {verdict.describe()}"
    )[:480]
    rollback(registry, warehouse, spec.name, reason=reason, actor=ACTOR, run_id=run_id)
    registry.set_version_tags(spec.name, champion, {t.DEPLOY_GUARD: t.GUARD_ROLLED_BACK})
    incident = raise_incident(
        warehouse,
        webhook_url,
        kind="guarded_rollback",
        job=f"{spec.name}/deploy_guard",
        run_id=run_id,
        message=reason,
        runbook=RUNBOOK,
    )
    return GuardOutcome("rolled back", champion, previous, verdict, days, incident.incident_id)
