"""Rows kept aside: `quarantine.<table>`, with a declared schema that no batch can change.

An entry holds the row as JSON (so an all-null column, a wrong-typed cell or a column added at
the source can never break the table), its key and version, the reason, the run, and a status:
`pending` until it is resolved as `replayed` (published into `raw`) or `superseded` (a newer
version of its key reached `raw`, or a newer pending entry exists). Entries are written in the
publish transaction (contracts/publish.py); quarantining a row never touches `raw`.

`replay_quarantine` re-lands pending entries as a batch and runs the normal audit and publish on
it, so a replayed row passes the same rules, never replaces a newer row, and a key's pending
versions resolve to the newest. It returns one outcome per entry with its reason.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

import pandas as pd

from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.validate import REASON_COLUMN
from mlops_platform.warehouse import Warehouse
from mlops_platform.warehouse.base import Transaction, quote

QUARANTINE_SCHEMA = "quarantine"
ROW_ID_COLUMN = "_dlt_id"
PENDING, REPLAYED, SUPERSEDED, KEPT = "pending", "replayed", "superseded", "kept"
#: A row deleted at the source and removed from raw (kept here, never replayed).
DELETED = "deleted"
PUBLISHED_NOTE = "passed the contract; published"
#: The declared schema of every quarantine table.
COLUMNS: dict[str, str] = {
    "_quarantine_id": "TEXT",
    "_key": "TEXT",
    "_version": "TEXT",
    "_row": "TEXT",
    REASON_COLUMN: "TEXT",
    "_load_id": "TEXT",
    "_dagster_run_id": "TEXT",
    "_quarantined_at": "TIMESTAMP",
    "_status": "TEXT",
    "_resolved_at": "TIMESTAMP",
    "_outcome": "TEXT",
}
#: Landed columns not kept in the payload.
INTERNAL = ("_dlt_id", "_dlt_load_id")


def ensure_table(tx: Transaction, table: str) -> None:
    columns = ", ".join(f"{quote(c)} {t}" for c, t in COLUMNS.items())
    tx.execute(f"CREATE SCHEMA IF NOT EXISTS {QUARANTINE_SCHEMA}")
    tx.execute(f"CREATE TABLE IF NOT EXISTS {QUARANTINE_SCHEMA}.{quote(table)} ({columns})")


def _records(frame: pd.DataFrame) -> list[dict]:
    # pandas' JSON writer turns NaN/NaT into null and timestamps into ISO text.
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def key_text(contract: TableContract, record: dict) -> str:
    return json.dumps([record.get(c) for c in contract.key])


def version_of(value) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def entries_for(contract: TableContract, bad: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Quarantine entries (declared columns) for failing landed rows."""
    if bad.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    payload = bad.drop(columns=[c for c in [REASON_COLUMN, *INTERNAL] if c in bad])
    records = _records(payload)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    versions = [
        str(version_of(r.get(contract.version))) if contract.version else "" for r in records
    ]
    return pd.DataFrame(
        {
            "_quarantine_id": [uuid.uuid4().hex for _ in records],
            "_key": [key_text(contract, r) for r in records],
            "_version": versions,
            "_row": [json.dumps(r) for r in records],
            REASON_COLUMN: list(bad[REASON_COLUMN]),
            "_load_id": [str(v) for v in bad.get("_dlt_load_id", [""] * len(bad))],
            "_dagster_run_id": run_id,
            "_quarantined_at": now,
            "_status": PENDING,
            "_resolved_at": pd.NaT,
            "_outcome": None,
        }
    )[list(COLUMNS)]


def pending_entries(warehouse: Warehouse, table: str) -> pd.DataFrame:
    if not warehouse.table_exists(QUARANTINE_SCHEMA, table):
        return pd.DataFrame(columns=list(COLUMNS))
    return warehouse.read_table(QUARANTINE_SCHEMA, table, where=f"\"_status\" = '{PENDING}'")


def latest_landing_only(new: pd.DataFrame) -> pd.DataFrame:
    """Of failing rows landed more than once (a batch read again after a crash, or re-read at
    the cursor), keep those of the latest landing: two bad rows of one batch stay two."""
    if new.empty:
        return new
    same = ["_key", "_version", REASON_COLUMN, "_row"]
    latest = new.groupby(same, dropna=False)["_load_id"].transform("max")
    return new[new["_load_id"] == latest]


def without_repeats(new: pd.DataFrame, pending: pd.DataFrame) -> pd.DataFrame:
    """Drop new entries identical (key, version, reason) to a pending one: a row re-read at the
    cursor, or a future row read again, is quarantined once."""
    if new.empty or pending.empty:
        return new
    seen = set(zip(pending["_key"], pending["_version"], pending[REASON_COLUMN], strict=True))
    fresh = [
        (k, v, r) not in seen
        for k, v, r in zip(new["_key"], new["_version"], new[REASON_COLUMN], strict=True)
    ]
    return new[fresh]


def superseded_by(
    contract: TableContract, pending: pd.DataFrame, published: pd.DataFrame
) -> list[str]:
    """Pending entries whose key is being published at the same or a newer version."""
    if pending.empty or published.empty:
        return []
    newest: dict[str, pd.Timestamp | None] = {}
    for record in _records(published[[c for c in published if c not in INTERNAL]]):
        newest[key_text(contract, record)] = version_of(record.get(contract.version or ""))
    doomed = []
    for entry in pending.to_dict("records"):
        if entry["_key"] not in newest:
            continue
        mine, theirs = version_of(entry["_version"] or None), newest[entry["_key"]]
        if mine is None or theirs is None or theirs >= mine:
            doomed.append(entry["_quarantine_id"])
    return doomed


def resolve(tx: Transaction, table: str, ids: list[str], status: str, outcome: str) -> None:
    if not ids:
        return
    tx.put_frame("_resolved_ids", pd.DataFrame({"_quarantine_id": list(ids)}))
    tx.execute(
        f"UPDATE {QUARANTINE_SCHEMA}.{quote(table)} SET _status = :s, _resolved_at = :at, "
        "_outcome = :o WHERE _quarantine_id IN (SELECT _quarantine_id FROM _resolved_ids)",
        {"s": status, "at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "o": outcome},
    )


def pending_quarantine(warehouse: Warehouse, table: str, contract=None) -> pd.DataFrame:
    """Pending entries with their key columns spelled out (for listing)."""
    from mlops_platform.contracts.rules import CONTRACTS

    contract = contract or CONTRACTS[table]
    pending = pending_entries(warehouse, table)
    keys = pd.DataFrame(
        [json.loads(k) for k in pending["_key"]], columns=contract.key, index=pending.index
    )
    return pd.concat([keys, pending], axis=1)


@dataclass(frozen=True)
class ReplayOutcome:
    quarantine_id: str
    key: str
    version: str
    outcome: str  # replayed | superseded | kept
    reason: str


def replay_quarantine(
    warehouse: Warehouse,
    contract: TableContract,
    references: dict[str, list] | None = None,
    now: dt.datetime | None = None,
    run_id: str = "replay",
) -> list[ReplayOutcome]:
    """Re-audit pending entries and publish those that now pass; one outcome per entry."""
    from mlops_platform.contracts.publish import ROW_ID, audit_landed, publish
    from mlops_platform.ingestion.sources import LANDING_DATASET

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
