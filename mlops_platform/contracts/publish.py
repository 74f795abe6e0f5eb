"""Publish an audit (the P of write-audit-publish), in ONE warehouse transaction.

`publish` merges the passing rows into `raw` (replacing older versions of their keys), appends
the failing rows to `quarantine.<table>`, marks pending quarantine entries that a newer
published version supersedes, reflects or flags rows deleted at the source (as the contract
declares), deletes the audited batches from landing, moves the table's cursor (never over a
future row) and logs the batches. A crash, kill or lock at any point before the commit leaves
`raw`, quarantine, landing and the cursor as they were: the batches stay pending and the next
run audits them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_platform.contracts import quarantine as q
from mlops_platform.contracts.audit import (  # noqa: F401 - the rule names are part of the API
    AUDIT_COLUMNS,
    DELETED_RULE,
    DUPLICATE_RULE,
    FUTURE_RULE,
    LOAD_ID,
    MISSING_RULE,
    ROW_ID,
    STALE_RULE,
    TYPE_RULE,
    Audit,
    audit_landed,
    find_deleted,
)
from mlops_platform.contracts.rules import TableContract
from mlops_platform.ingestion import cursors
from mlops_platform.ingestion.sources import LANDING_DATASET
from mlops_platform.warehouse import WarehouseStore
from mlops_platform.warehouse.base import Transaction, quote

logger = logging.getLogger(__name__)


def reference_values(warehouse: WarehouseStore, contract: TableContract) -> dict[str, list]:
    """Allowed values of columns that reference another raw table (its declared references)."""
    values = {}
    for column, (table, ref_column) in contract.references.items():
        if not warehouse.table_exists("raw", table):
            raise RuntimeError(
                f"contract of raw.{contract.table} needs raw.{table} for allowed {column} values, "
                "and it has not been published"
            )
        found = warehouse.query(f"SELECT DISTINCT {quote(ref_column)} AS v FROM raw.{quote(table)}")
        values[column] = [v for v in found["v"] if v is not None]
    return values


def audit_and_publish(
    warehouse: WarehouseStore,
    contract: TableContract,
    now: dt.datetime | None,
    run_id: str,
    source_keys: Any = None,
    raw_types: dict[str, str] | None = None,
) -> tuple[Audit, Published]:
    """Audit a table's landed batches and publish them (what its `raw/<table>` asset does).

    `source_keys`: every key the source holds now (a pandas frame or an Arrow table), to find
    rows deleted there (None: skip). `raw_types`: `raw.<table>`'s column types when the caller
    has just looked them up (empty: not published; None: looked up here).

    On a warehouse that can (`WarehouseStore.sql_audit`), the audit runs in the warehouse, in
    the publish's transaction (contracts/warehouse_audit.py); where SQL and Great Expectations
    disagree, or the contract has no exact SQL form, the landed rows are audited in pandas by
    GE alone (`audit_landed`)."""
    references = reference_values(warehouse, contract)
    deleted = None
    if source_keys is not None and contract.on_source_delete != "ignore":
        deleted = find_deleted(warehouse, contract, source_keys)
    # (a table's column types are none when it does not exist: one query answers both)
    landed_types = (
        warehouse.column_types(LANDING_DATASET, contract.table) if warehouse.sql_audit else {}
    )
    if landed_types:
        from mlops_platform.contracts.warehouse_audit import AuditMismatch

        try:
            done = _audit_and_publish_in_warehouse(
                warehouse, contract, landed_types, references, now, run_id, deleted, raw_types
            )
        except AuditMismatch as exc:  # rolled back: nothing of it was kept
            logger.warning("%s; auditing with Great Expectations alone", exc)
        else:
            if done is not None:
                return done
    audit = audit_landed(warehouse, contract, references, now)
    return audit, publish(warehouse, contract, audit, run_id, deleted=deleted)


def _audit_and_publish_in_warehouse(
    warehouse: WarehouseStore,
    contract: TableContract,
    types: dict[str, str],
    references: dict[str, list],
    now: dt.datetime | None,
    run_id: str,
    deleted: pd.DataFrame | None,
    raw_types: dict[str, str] | None = None,
) -> tuple[Audit, Published] | None:
    """The audit in the warehouse and the publish, in one transaction; None when the contract
    or the landed columns (`types`) have no exact SQL form (GE alone audits them).

    A published table with no landed row and no row deleted at the source has nothing to
    publish: only its table rules are judged, and nothing is written."""
    from mlops_platform.contracts.warehouse_audit import (
        audit_in_warehouse,
        audit_of_nothing_landed,
        plan_rules,
    )

    if raw_types is None:
        raw_types = warehouse.column_types("raw", contract.table)
    raw_types = raw_types or None  # None: not published
    rules = plan_rules(contract, types, raw_types, references)
    if rules is None:
        return None
    with warehouse.transaction() as tx:
        if raw_types is not None and (deleted is None or deleted.empty):
            audit = audit_of_nothing_landed(tx, contract, types, raw_types, now)
            if audit is not None:
                # The cursor stays where the last publish left it (shown on the asset).
                cursor = (
                    cursors.read_cursor_in(tx, contract.table)
                    if tx.columns(cursors.STATE_SCHEMA, cursors.CURSORS)
                    else None
                )
                return audit, Published(contract.table, 0, 0, 0, 0, 0, 0, 0, cursor)
        audit = audit_in_warehouse(tx, contract, types, raw_types, rules, references, now)
        return audit, publish(
            warehouse, contract, audit, run_id, deleted=deleted, tx=tx, landed_types=types
        )


@dataclass(frozen=True)
class Published:
    table: str
    batches: int
    landed: int
    published: int
    unchanged: int
    quarantined: int
    superseded: int
    deleted_at_source: int
    cursor: dt.datetime | None


def publish(
    warehouse: WarehouseStore,
    contract: TableContract,
    audit: Audit,
    run_id: str,
    replayed: dict[str, str] | None = None,
    deleted: pd.DataFrame | None = None,
    tx: Transaction | None = None,
    landed_types: dict[str, str] | None = None,
) -> Published:
    """Publish an audit in one transaction (see the module docstring): `tx` when the audit
    ran in the warehouse (its verdicts are in that transaction), else a new one.
    `landed_types`: the landing table's column types the audit judged (None: looked up).

    `replayed` maps landed row ids that came from quarantine to their entry ids: those rows
    update their entry instead of adding one."""
    table, key, replayed = contract.table, contract.key, replayed or {}
    landing = f"{LANDING_DATASET}.{quote(table)}"
    target = f"raw.{quote(table)}"
    new_entries = q.entries_for(
        contract, audit.bad[~audit.bad[q.ROW_ID_COLUMN].isin(replayed)], run_id
    )
    new_entries = q.latest_landing_only(new_entries)
    pending = q.pending_entries(warehouse, table)
    new_entries = q.without_repeats(new_entries, pending)
    verdicts = audit.verdicts
    if verdicts:  # the landed rows and their fates are in the open transaction's temp table
        from mlops_platform.contracts.warehouse_audit import FATE, PUBLISH

        chosen = f"SELECT * FROM {verdicts} WHERE {FATE} = '{PUBLISH}'"
        published_rows = tx.query(chosen) if len(pending) else pd.DataFrame()
    else:
        chosen = (
            f"SELECT * FROM {landing} l WHERE l.{ROW_ID} IN (SELECT {ROW_ID} FROM _publish_ids)"
        )
        # Each landed row's fate, matched once (lists of a year's row ids are slow to match).
        is_published = audit.landed[ROW_ID].isin(set(audit.publish_ids))
        # (the published rows themselves only matter to pending entries: rarely any)
        published_rows = audit.landed[is_published] if len(pending) else audit.landed.iloc[:0]
    superseded = q.superseded_by(contract, pending, published_rows)
    deleted = deleted if deleted is not None and len(deleted) else pd.DataFrame()
    reflect = contract.on_source_delete == "reflect" and len(deleted) > 0
    gone = q.entries_for(contract, deleted, run_id)
    if reflect:
        gone = gone.assign(_status=q.DELETED, _resolved_at=cursors.utcnow())
        gone["_outcome"] = "deleted at the source; removed from raw"
    else:
        gone = q.without_repeats(gone, pending)  # flagged once, kept in raw
    with contextlib.nullcontext(tx) if tx is not None else warehouse.transaction() as tx:
        cursors.ensure_state(tx)
        q.ensure_table(tx, table)
        if audit.published_rows:
            types = landed_types or warehouse.column_types(LANDING_DATASET, table)
            columns = [c for c in types if c not in AUDIT_COLUMNS]
            tx.execute("CREATE SCHEMA IF NOT EXISTS raw")
            names = ", ".join(quote(c) for c in columns)
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {target} AS SELECT {names} FROM {landing} WHERE 1 = 0"
            )
            stored = set(tx.columns("raw", table))
            for column in columns:
                if column not in stored:  # a column added at the source
                    tx.execute(f"ALTER TABLE {target} ADD COLUMN {quote(column)} {types[column]}")
            if not verdicts:
                tx.put_frame("_publish_ids", pd.DataFrame({ROW_ID: audit.publish_ids}))
            match = " AND ".join(f"r.{quote(c)} IS NOT DISTINCT FROM c.{quote(c)}" for c in key)
            tx.execute(
                f"DELETE FROM {target} r WHERE EXISTS (SELECT 1 FROM ({chosen}) c WHERE {match})"
            )
            tx.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM ({chosen}) c")
        if reflect:
            tx.put_frame("_deleted_keys", deleted[key])
            match = " AND ".join(f"r.{quote(c)} IS NOT DISTINCT FROM d.{quote(c)}" for c in key)
            tx.execute(
                f"DELETE FROM {target} r WHERE EXISTS (SELECT 1 FROM _deleted_keys d WHERE {match})"
            )
        entries = [frame for frame in (new_entries, gone) if not frame.empty]
        if entries:  # (pandas no longer wants empty frames in a concat)
            tx.insert_frame(q.QUARANTINE_SCHEMA, table, pd.concat(entries))
        q.resolve(tx, table, superseded, "superseded", "a newer version was published")
        if audit.load_ids:
            tx.put_frame("_audited_loads", pd.DataFrame({LOAD_ID: audit.load_ids}))
            tx.execute(
                f"DELETE FROM {landing} WHERE {LOAD_ID} IN (SELECT {LOAD_ID} FROM _audited_loads)"
            )
        previous = cursors.read_cursor_in(tx, table)
        if audit.cursor is not None and (previous is None or audit.cursor > previous):
            cursors.store_cursor(tx, table, contract.cursor or "", audit.cursor, "published")
        for load_id, n, p, u, bad in _batch_counts(tx, audit):
            tx.execute(
                f"INSERT INTO {cursors.STATE_SCHEMA}.{cursors.BATCHES} VALUES "
                "(:t, :l, :n, :p, :u, :q, :r, :at)",
                {"t": table, "l": load_id, "n": n, "p": p, "u": u, "q": bad, "r": run_id,
                 "at": cursors.utcnow()},
            )  # fmt: skip
    return Published(
        table=table,
        batches=len(audit.load_ids),
        landed=audit.landed_rows,
        published=audit.published_rows,
        unchanged=audit.unchanged_rows,
        quarantined=len(new_entries),
        superseded=len(superseded),
        deleted_at_source=len(gone),
        cursor=audit.cursor,
    )


def _batch_counts(tx: Transaction, audit: Audit) -> list[tuple[str, int, int, int, int]]:
    """(load id, landed, published, unchanged, quarantined) for each audited batch."""
    if audit.verdicts:  # counted by the audit, from its verdicts
        from mlops_platform.contracts.warehouse_audit import BAD, PUBLISH, UNCHANGED

        found = []
        for load_id in audit.load_ids:
            fates = audit.load_fates.get(load_id, {})
            found.append(
                (
                    load_id,
                    sum(fates.values()),
                    fates.get(PUBLISH, 0),
                    fates.get(UNCHANGED, 0),
                    fates.get(BAD, 0),
                )
            )
        return found
    load_of = audit.landed[LOAD_ID].astype(str)
    is_published = audit.landed[ROW_ID].isin(set(audit.publish_ids))
    is_unchanged = audit.landed[ROW_ID].isin(set(audit.unchanged_ids))
    is_bad = audit.landed[ROW_ID].isin(set(audit.bad[ROW_ID]))
    found = []
    for load_id in audit.load_ids:
        in_load = load_of == load_id
        found.append(
            (
                load_id,
                int(in_load.sum()),
                int((in_load & is_published).sum()),
                int((in_load & is_unchanged).sum()),
                int((in_load & is_bad).sum()),
            )
        )
    return found
