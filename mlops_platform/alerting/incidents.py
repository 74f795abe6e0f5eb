"""Incident records and webhook alerts (no Dagster).

An incident is never lost: when the warehouse cannot take it (another process holds DuckDB's
write lock past the wait, PostgreSQL is down), it is appended to a JSON-lines spool under the
data dir, and the next incident that does get written flushes the spool first (idempotently:
incident ids already in `ops.incidents` are skipped). The webhook is called with a timeout and
bounded retries; a webhook that stays down is recorded on the incident, never raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_platform.contracts.classification import classified_columns
from mlops_platform.privacy import MaskingFilter, mask_text
from mlops_platform.reliability import Backoff, Timeouts
from mlops_platform.settings import data_dir
from mlops_platform.warehouse import WarehouseStore

log = logging.getLogger("mlops.alerting")
log.addFilter(MaskingFilter(classified_columns()))

INCIDENTS = ("ops", "incidents")
SPOOL_NAME = "incidents.jsonl"

RUNBOOKS = {
    "failed_gate": "docs/runbooks/failed-gate.md",
    "drift": "docs/runbooks/drift-alert.md",
    "serving_errors": "docs/runbooks/serving-errors.md",
    "rollback": "docs/runbooks/rollback.md",
    "guarded_rollback": "docs/runbooks/guarded-rollback.md",
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


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def post_webhook(url: str, payload: dict, timeouts: Timeouts | None = None) -> str:
    """POST the alert with a timeout, retrying connection errors, 429 and 5xx with backoff.

    Returns a status string (never raises: the incident is kept anyway)."""
    if not url:
        return "no webhook configured"
    import httpx

    timeouts = timeouts or Timeouts.from_env()
    delays = Backoff(first_s=0.2, factor=2.0, max_delay_s=5.0, total_s=30.0).delays()
    outcome = ""
    for attempt in range(timeouts.webhook_retries + 1):
        try:
            reply = httpx.post(url, json=payload, timeout=timeouts.webhook_s)
            outcome = f"HTTP {reply.status_code}"
            if not _retryable_status(reply.status_code):
                return outcome + (f" after {attempt + 1} attempts" if attempt else "")
        except httpx.HTTPError as exc:
            outcome = f"failed: {type(exc).__name__}"
        delay = next(delays, None)
        if attempt == timeouts.webhook_retries or delay is None:
            break
        log.warning("alert webhook %s: %s; retrying in %.1fs", url, outcome, delay)
        time.sleep(delay)
    log.error("alert webhook %s gave up: %s", url, outcome)
    return f"{outcome} (gave up after {timeouts.webhook_retries + 1} attempts)"


def spool_path() -> Path:
    return data_dir() / "spool" / SPOOL_NAME


@contextlib.contextmanager
def _spool_locked():
    """The spool file, held under an exclusive lock (several processes raise incidents)."""
    path = spool_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spool_incident(incident: dict) -> None:
    record = {**incident, "raised_at": incident["raised_at"].isoformat()}
    with _spool_locked() as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def spooled_incidents() -> list[dict]:
    path = spool_path()
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def flush_spool(warehouse: WarehouseStore) -> int:
    """Write spooled incidents not yet in `ops.incidents`, then empty the spool.

    Returns how many were written. Raises (keeping the spool) if the warehouse refuses."""
    if not spool_path().exists():
        return 0
    with _spool_locked() as handle:
        handle.seek(0)
        records = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
        if not records:
            return 0
        frame = pd.DataFrame(records)
        frame["raised_at"] = pd.to_datetime(frame["raised_at"])
        if warehouse.table_exists(*INCIDENTS):
            ids = ", ".join(f"'{i}'" for i in frame["incident_id"] if str(i).isalnum())
            known = warehouse.query(
                f"SELECT incident_id FROM ops.incidents WHERE incident_id IN ({ids or 'NULL'})"
            )
            # A flush that died after writing must not write the same incidents twice.
            frame = frame[~frame["incident_id"].isin(set(known["incident_id"]))]
        if len(frame):
            warehouse.append(*INCIDENTS, frame)
        handle.seek(0)
        handle.truncate()
    log.warning("flushed %d spooled incidents into ops.incidents", len(frame))
    return len(frame)


def record_incident(warehouse: WarehouseStore, incident: dict) -> str:
    """Write the incident (after any spooled ones); spool it if the warehouse cannot take it.

    Returns where it went: "warehouse" or "spool"."""
    try:
        flush_spool(warehouse)
        warehouse.append(*INCIDENTS, pd.DataFrame([incident]))
        return "warehouse"
    except Exception as exc:
        spool_incident(incident)
        log.error(
            "incident %s spooled to %s (warehouse unavailable: %s)",
            incident["incident_id"],
            spool_path(),
            str(exc).splitlines()[0][:200],
        )
        return "spool"


@dataclass(frozen=True)
class Incident:
    """A raised incident: its record (the `ops.incidents` row) and where it went."""

    incident_id: str
    raised_at: dt.datetime
    kind: str
    job: str
    dagster_run_id: str
    message: str  # classified values masked
    runbook: str
    #: the webhook's answer ("sent ...", "failed: ...", or "" with no webhook configured)
    webhook: str
    #: "warehouse", or "spool" when the warehouse could not take it (written later)
    stored_in: str


def raise_incident(
    warehouse: WarehouseStore,
    webhook_url: str,
    *,
    kind: str,
    job: str,
    run_id: str,
    message: str,
    runbook: str,
) -> Incident:
    """Record an incident in `ops.incidents` (or the spool) and send it to the webhook."""
    # Failure messages can quote rows: classified values never reach the record or the hook.
    message = mask_text(message, classified_columns())
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
    webhook = post_webhook(webhook_url, payload)
    stored_in = record_incident(warehouse, {**incident, "webhook": webhook})
    log.warning("incident %s: %s", incident["incident_id"], json.dumps(payload)[:500])
    return Incident(**incident, webhook=webhook, stored_in=stored_in)
