"""Replay quarantined rows: re-land pending entries as a batch and run the normal audit and
publish on it, so a replayed row passes the same rules, never replaces a newer row, and a key's
pending versions resolve to the newest. One outcome per entry, with its reason.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

import pandas as pd

from mlops_platform.contracts.publish import ROW_ID, audit_landed, publish
from mlops_platform.contracts.quarantine import (
    KEPT,
    PUBLISHED_NOTE,
    REPLAYED,
    SUPERSEDED,
    pending_entries,
    resolve,
    version_of,
)
from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.validate import REASON_COLUMN
from mlops_platform.ingestion.sources import LANDING_DATASET
from mlops_platform.warehouse import WarehouseStore
from mlops_platform.warehouse.base import quote


@dataclass(frozen=True)
class ReplayOutcome:
    quarantine_id: str
    key: str
    version: str
    outcome: str  # replayed | superseded | kept
    reason: str


def replay_quarantine(
    warehouse: WarehouseStore,
    contract: TableContract,
    references: dict[str, list] | None = None,
    now: dt.datetime | None = None,
    run_id: str = "replay",
) -> list[ReplayOutcome]:
    """Re-audit pending entries and publish those that now pass; one outcome per entry."""
    table = contract.table
    pending = pending_entries(warehouse, table)
    if pending.empty:
        return []
    outcomes: list[ReplayOutcome] = []
    stamp = pending["_version"].map(lambda v: version_of(v or None) or pd.Timestamp.min)
    pending = pending.assign(_order=stamp).sort_values(["_order", "_quarantined_at"])
    older = pending.duplicated("_key", keep="last")
    for entry in pending[older].to_dict("records"):
        outcomes.append(
            ReplayOutcome(
                entry["_quarantine_id"],
                entry["_key"],
                entry["_version"],
                SUPERSEDED,
                "a newer pending version of this key exists",
            )
        )
    newest = pending[~older]
    rows = pd.DataFrame([json.loads(r) for r in newest["_row"]], index=newest.index)
    types = warehouse.column_types(LANDING_DATASET, table)
    rows = rows[[c for c in rows if c in types]]
    rows["_dlt_load_id"] = f"{time.time():.6f}"  # dlt's format: later loads sort later
    rows[ROW_ID] = list(newest["_quarantine_id"])
    replayed = dict(zip(rows[ROW_ID], rows[ROW_ID], strict=True))

    with warehouse.transaction() as tx:
        text = (
            rows.astype(object)
            .where(rows.notna(), None)
            .map(lambda v: None if v is None else str(v))
        )
        tx.put_frame("_replay_rows", text)
        names = ", ".join(quote(c) for c in rows.columns)
        casts = ", ".join(_cast(quote(c), types[c]) for c in rows.columns)
        tx.execute(
            f"INSERT INTO {LANDING_DATASET}.{quote(table)} ({names}) "
            f"SELECT {casts} FROM _replay_rows"
        )
        resolve(
            tx,
            table,
            [o.quarantine_id for o in outcomes],
            SUPERSEDED,
            outcomes[0].reason if outcomes else "",
        )

    audit = audit_landed(warehouse, contract, references or {}, now)
    publish(warehouse, contract, audit, run_id, replayed=replayed)
    reasons = dict(zip(audit.bad[ROW_ID], audit.bad[REASON_COLUMN], strict=True))
    kept, superseded, done = [], [], []
    for entry in newest.to_dict("records"):
        qid, key, version = entry["_quarantine_id"], entry["_key"], entry["_version"]
        if qid in audit.publish_ids:
            done.append(qid)
            outcomes.append(ReplayOutcome(qid, key, version, REPLAYED, PUBLISHED_NOTE))
        elif qid in reasons and "not_older_than_stored" not in reasons[qid]:
            kept.append(qid)
            outcomes.append(ReplayOutcome(qid, key, version, KEPT, reasons[qid]))
        else:
            superseded.append(qid)
            why = reasons.get(qid, "raw already holds this version")
            outcomes.append(ReplayOutcome(qid, key, version, SUPERSEDED, why))
    with warehouse.transaction() as tx:
        resolve(tx, table, done, REPLAYED, PUBLISHED_NOTE)
        resolve(tx, table, superseded, SUPERSEDED, "raw holds this or a newer version")
    return outcomes


def _cast(column: str, kind: str) -> str:
    if kind.lower() in {"bigint", "integer", "smallint", "int"}:
        # JSON carries integers of nullable columns as 5.0, which does not cast to an integer.
        return f"CAST(CAST({column} AS DOUBLE PRECISION) AS {kind})"
    return f"CAST({column} AS {kind})"
