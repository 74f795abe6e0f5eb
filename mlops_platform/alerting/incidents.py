"""Incident records and webhook alerts (no Dagster)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import pandas as pd

from mlops_platform.warehouse import Warehouse

log = logging.getLogger("mlops.alerting")

RUNBOOKS = {
    "failed_gate": "docs/runbooks/failed-gate.md",
    "drift": "docs/runbooks/drift-alert.md",
    "serving_errors": "docs/runbooks/serving-errors.md",
    "rollback": "docs/runbooks/rollback.md",
    "data_contract": "docs/runbooks/data-contract.md",
}


def runbook_for(job_name: str, message: str) -> str:
    """Which runbook a failed run calls for."""
    if job_name.startswith("train_") or "evaluation_gate" in message:
        return RUNBOOKS["failed_gate"]
    if job_name == "ingest" or "contract" in message:
        return RUNBOOKS["data_contract"]
    if job_name.startswith(("rollback", "approve")):
        return RUNBOOKS["rollback"]
    return RUNBOOKS["drift"] if job_name.startswith("monitor_") else RUNBOOKS["failed_gate"]


def post_webhook(url: str, payload: dict, timeout: float = 5.0) -> str:
    """POST the alert; returns a status string (never raises: the incident is kept anyway)."""
    if not url:
        return "no webhook configured"
    import httpx

    try:
        reply = httpx.post(url, json=payload, timeout=timeout)
        return f"HTTP {reply.status_code}"
    except httpx.HTTPError as exc:
        log.error("alert webhook %s failed: %s", url, exc)
        return f"failed: {type(exc).__name__}"


def raise_incident(
    warehouse: Warehouse,
    webhook_url: str,
    *,
    kind: str,
    job: str,
    run_id: str,
    message: str,
    runbook: str,
) -> dict:
    """Record an incident in `ops.incidents` and send it to the webhook."""
    incident = {
        "incident_id": uuid.uuid4().hex,
        "raised_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "kind": kind,
        "job": job,
        "dagster_run_id": run_id,
        "message": message[:4000],
        "runbook": runbook,
    }
    payload = {
        **incident,
        "raised_at": incident["raised_at"].isoformat(),
        "text": f"[{kind}] {job} run {run_id[:8]} failed: {message[:300]} — runbook: {runbook}",
    }
    incident["webhook"] = post_webhook(webhook_url, payload)
    warehouse.append("ops", "incidents", pd.DataFrame([incident]))
    log.warning("incident %s: %s", incident["incident_id"], json.dumps(payload)[:500])
    return incident
