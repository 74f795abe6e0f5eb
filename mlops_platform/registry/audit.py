"""The audit log of alias changes: write-ahead, serialised, hash-chained, append-only.

- Every change is first journalled to a local spool (fsync'd JSON lines, state `intent`), then
  the alias moves (state `moved`), then the spool is flushed to `audit.model_alias_changes`. If
  the alias cannot move, the entry is withdrawn (nothing happened, nothing is logged); if the
  warehouse cannot take the row (a step holds DuckDB's write lock, the server is down), the row
  stays spooled and the next audit write or read flushes it, in order; an `intent` left by a
  crashed process is settled by the next change of that model from the registry's state. So a
  change and its row never part ways.
- Changes of one model are serialised by a lock (`governance_lock`), across threads and
  processes, so a promote and a rollback cannot interleave their read-then-move.
- Each row carries `seq`, `prev_hash` and `row_hash` (SHA-256 of the previous row's hash and its
  own content), per model; the registered model's `audit.head` tag names the last row, so an
  UPDATE, a DELETE (also of the last row) or a reordering is detected by `verify_chain`
  (`mlops model audit --verify`). On PostgreSQL a trigger also refuses UPDATE/DELETE/TRUNCATE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from dataclasses import asdict, dataclass, replace

import pandas as pd

from mlops_platform.model.tags import AUDIT_HEAD
from mlops_platform.registry.journal import (
    confirm,
    governance_lock,
    journal,
    pending,
    read_spool,
    resolve_intents,
    spool_locked,
    withdraw,
    write_spool,
)

log = logging.getLogger("mlops.registry.audit")

AUDIT_SCHEMA, AUDIT_TABLE = "audit", "model_alias_changes"
HEAD_TAG = AUDIT_HEAD
REASON_MAX_CHARS = 500
COLUMNS = [
    "changed_at",
    "model",
    "alias",
    "from_version",
    "to_version",
    "reason",
    "gate_results",
    "dagster_run_id",
    "actor",
    "change_id",
    "seq",
    "prev_hash",
    "row_hash",
]
#: The fields a row's hash covers (all but the hash itself), in this order.
HASHED = COLUMNS[:-1]
__all__ = [
    "confirm",
    "governance_lock",
    "journal",
    "pending",
    "resolve_intents",
    "withdraw",
]


class PromotionRefused(RuntimeError):
    """The requested alias change would break a governance rule."""


def validate_reason(reason: object) -> str:
    """A non-empty, bounded, printable reason, checked before anything moves."""
    if not isinstance(reason, str) or not reason.strip():
        raise PromotionRefused("a reason is required (it goes into the audit log)")
    reason = reason.strip()
    if len(reason) > REASON_MAX_CHARS:
        raise PromotionRefused(
            f"the reason is {len(reason)} characters long; at most {REASON_MAX_CHARS}"
        )
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", reason):
        raise PromotionRefused("the reason contains control characters")
    return reason


# -- chain -----------------------------------------------------------------------------------
def _canonical(value):
    if value is None or (not isinstance(value, str | int | float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value != value:  # NaN from a missing version
        return None
    if isinstance(value, dt.datetime | pd.Timestamp):
        return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%f")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def row_hash(row: dict) -> str:
    content = {k: _canonical(row.get(k)) for k in HASHED}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _chain_heads(warehouse, models: set[str]) -> dict[str, tuple[int, str]]:
    """The last (seq, row_hash) of each model already in the table."""
    heads = {m: (0, "") for m in models}
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return heads
    if "row_hash" not in warehouse.columns(AUDIT_SCHEMA, AUDIT_TABLE):
        return heads
    found = warehouse.query(
        f"SELECT model, seq, row_hash FROM {AUDIT_SCHEMA}.{AUDIT_TABLE} WHERE seq IS NOT NULL"
    )
    for model, rows in found.groupby("model"):
        if model in heads:
            last = rows.sort_values("seq").iloc[-1]
            heads[model] = (int(last["seq"]), str(last["row_hash"]))
    return heads


def _existing_ids(warehouse, ids: list[str]) -> set[str]:
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return set()
    if "change_id" not in warehouse.columns(AUDIT_SCHEMA, AUDIT_TABLE):
        return set()
    found = warehouse.query(f"SELECT change_id FROM {AUDIT_SCHEMA}.{AUDIT_TABLE}")
    return set(found["change_id"].dropna()) & set(ids)


def flush(warehouse, registry=None) -> int:
    """Move spooled rows into the warehouse, chained, in order; returns how many are still
    pending (0 when all landed). Never raises for a busy or failing warehouse: rows wait."""
    with spool_locked(warehouse) as path:
        rows = read_spool(path)
        if not any(r.get("state", "moved") == "moved" for r in rows):
            return 0
        try:
            moved = [r for r in rows if r.get("state", "moved") == "moved"]
            done = _existing_ids(warehouse, [r["change_id"] for r in moved])
            todo = [
                {k: r[k] for k in COLUMNS if k in r} for r in moved if r["change_id"] not in done
            ]
            heads = _chain_heads(warehouse, {r["model"] for r in todo})
            for row in todo:
                seq, previous = heads[row["model"]]
                row.update(seq=seq + 1, prev_hash=previous)
                row["row_hash"] = row_hash(row)
                heads[row["model"]] = (row["seq"], row["row_hash"])
            if todo:
                frame = pd.DataFrame(todo, columns=COLUMNS)
                frame["changed_at"] = pd.to_datetime(frame["changed_at"])
                frame = frame.astype(
                    {"from_version": "string", "to_version": "string", "seq": "int64"}
                )
                warehouse.append(AUDIT_SCHEMA, AUDIT_TABLE, frame)
                _protect(warehouse)
        except Exception as exc:  # noqa: BLE001 - any store failure: keep the rows, report
            log.warning(
                "audit log not writable now (%s: %s); %d row(s) kept in %s, written on the "
                "next audit write",
                type(exc).__name__,
                str(exc)[:200],
                len(moved),
                path,
            )
            return len(moved)
        # What is still under way (journalled, alias not moved yet) stays.
        write_spool(path, [r for r in rows if r.get("state", "moved") != "moved"])
    if registry is not None:
        for model, (seq, digest) in heads.items():
            registry.client.set_registered_model_tag(model, HEAD_TAG, f"{seq}:{digest}")
        if todo:
            _publish_table(warehouse, registry, todo)
    return 0


def _publish_table(warehouse, registry, rows: list[dict]) -> None:
    """The model's audit trail, also as a table on the runs of the versions just moved to (a
    copy for the MLflow UI: the warehouse row above is the record)."""
    from mlops_platform.registry.mlflow_ui import publish_audit_table

    moved: dict[str, set[str]] = {}
    for row in rows:
        moved.setdefault(row["model"], set()).add(str(row["to_version"] or ""))
    try:
        publish_audit_table(registry, audit_log(warehouse), moved)
    except Exception as exc:  # noqa: BLE001 - the record is written; say the copy is missing
        log.warning(
            "audit trail not copied to MLflow (%s: %s); `mlops model audit` reads it",
            type(exc).__name__,
            str(exc)[:200],
        )


def _protect(warehouse) -> None:
    """On PostgreSQL, refuse UPDATE, DELETE and TRUNCATE of the audit table (a trigger)."""
    from mlops_platform.warehouse import PostgresStore

    if not isinstance(warehouse, PostgresStore):
        return
    table = f"{AUDIT_SCHEMA}.{AUDIT_TABLE}"
    found = warehouse.query(
        "SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
        "AND tgname IN ('append_only', 'append_only_truncate')",
        {"t": table},
    )
    if int(found["n"].iloc[0]) == 2:
        return
    warehouse.execute(
        f"CREATE OR REPLACE FUNCTION {AUDIT_SCHEMA}.refuse_audit_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
        "'%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP; END $$"
    )
    warehouse.execute(
        f"CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_SCHEMA}.refuse_audit_change()"
    )
    warehouse.execute(
        f"CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_SCHEMA}.refuse_audit_change()"
    )


def verify_chain(warehouse, registry=None, model: str | None = None) -> list[str]:
    """Every problem found in the chain (empty: intact). Rows written before the chain existed
    (no `seq`) are left out; everything after them must link."""
    problems: list[str] = []
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return problems
    if "row_hash" not in warehouse.columns(AUDIT_SCHEMA, AUDIT_TABLE):
        return ["the audit table has no hash chain (written by an older version)"]
    table = warehouse.query(f"SELECT * FROM {AUDIT_SCHEMA}.{AUDIT_TABLE} WHERE seq IS NOT NULL")
    models = [model] if model else sorted(set(table["model"]))
    for name in models:
        rows = table[table["model"] == name].sort_values("seq").to_dict("records")
        previous, expected_seq = "", 1
        for row in rows:
            where = f"{name} row seq={row['seq']} ({row['alias']} -> {row['to_version']})"
            if int(row["seq"]) != expected_seq:
                problems.append(f"{where}: expected seq {expected_seq} (rows missing?)")
            if row["prev_hash"] != previous:
                problems.append(f"{where}: does not link to the row before it")
            if row_hash(row) != row["row_hash"]:
                problems.append(f"{where}: content does not match its hash (altered)")
            previous, expected_seq = row["row_hash"], int(row["seq"]) + 1
        if registry is not None and rows:
            head = registry.client.get_registered_model(name).tags.get(HEAD_TAG)
            problems += _check_head(name, head, rows)
    return problems


def _check_head(name: str, head: str | None, rows: list[dict]) -> list[str]:
    """The registry's head tag may lag (rows flushed by a reader) but never lead the chain."""
    if not head:
        return []
    seq, _, digest = head.partition(":")
    by_seq = {int(r["seq"]): r["row_hash"] for r in rows}
    if int(seq) > max(by_seq):
        return [
            f"{name}: the registry's head is row {seq}, the table ends at {max(by_seq)} "
            "(rows removed from the end)"
        ]
    if by_seq.get(int(seq)) != digest:
        return [f"{name}: row {seq} is not the one the registry's head recorded"]
    return []


@dataclass(frozen=True)
class AliasChange:
    """One move of one alias (`to_version` None: the alias was removed), as audited."""

    changed_at: str
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    gate_results: str
    dagster_run_id: str
    actor: str
    change_id: str
    #: True when the audit row waits in the local spool (the warehouse was busy): it is
    #: written with the next audit write or read.
    queued: bool = False

    def row(self) -> dict:
        """The fields the journal and the audit table keep."""
        return {k: v for k, v in asdict(self).items() if k != "queued"}

    def settled(self, queued: bool) -> AliasChange:
        return replace(self, queued=queued)


def new_change(
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    actor: str,
    run_id: str,
    gate: dict | None,
) -> AliasChange:
    return AliasChange(
        changed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
        model=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        reason=reason,
        gate_results=json.dumps(gate or {}, sort_keys=True, default=str),
        dagster_run_id=run_id,
        actor=actor,
        change_id=uuid.uuid4().hex,
    )


def audit_log(warehouse, model: str | None = None) -> pd.DataFrame:
    """The audit rows (flushing any spooled ones first, if the warehouse takes them)."""
    flush(warehouse)
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        return pd.DataFrame(columns=COLUMNS)
    sql = f"SELECT * FROM {AUDIT_SCHEMA}.{AUDIT_TABLE}"
    found = (
        warehouse.query(sql + " WHERE model = :model", {"model": model})
        if model
        else warehouse.query(sql)
    )
    keys = ["changed_at", "seq"] if "seq" in found.columns else ["changed_at"]
    return found.sort_values(keys, kind="stable").reset_index(drop=True)
