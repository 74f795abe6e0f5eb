"""Rows kept aside: `quarantine.<table>`, with a declared schema that no batch can change.

An entry holds the row as JSON (so an all-null column, a wrong-typed cell or a column added at
the source can never break the table), its key and version, the reason, the run, and a status:
`pending` until it is resolved as `replayed` (published into `raw`) or `superseded` (a newer
version of its key reached `raw`, or a newer pending entry exists). Entries are written in the
publish transaction (contracts/publish.py); quarantining a row never touches `raw`.

Replaying pending entries is `quarantine_replay.py` (it runs the audit and publish, which
write here: the replay sits above both).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd

from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.validate import REASON_COLUMN
from mlops_platform.warehouse import WarehouseStore
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


def pending_entries(warehouse: WarehouseStore, table: str) -> pd.DataFrame:
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


def pending_quarantine(warehouse: WarehouseStore, table: str, contract=None) -> pd.DataFrame:
    """Pending entries with their key columns spelled out (for listing)."""
    from mlops_platform.contracts.rules import CONTRACTS

    contract = contract or CONTRACTS[table]
    pending = pending_entries(warehouse, table)
    keys = pd.DataFrame(
        [json.loads(k) for k in pending["_key"]], columns=contract.key, index=pending.index
    )
    return pd.concat([keys, pending], axis=1)
