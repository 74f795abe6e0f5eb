"""Keep offending rows aside: `quarantine.<table>` in the warehouse, append-only.

Rows are first copied to quarantine (with the reason, the run and the time) and only then taken
out of `raw.<table>`, so a crash in between leaves a row in both places, never in neither.
`replay_quarantine` puts rows back once they pass the contract (for example after the missing
carrier has been added to `airlines`), and stamps `_replayed_at` on them.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pandas as pd

from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.validate import REASON_COLUMN, validate_contract
from mlops_platform.warehouse import Warehouse

QUARANTINE_SCHEMA = "quarantine"
META_COLUMNS = [
    REASON_COLUMN,
    "_quarantine_id",
    "_quarantined_at",
    "_dagster_run_id",
    "_replayed_at",
]


def quarantine_rows(
    warehouse: Warehouse, contract: TableContract, bad_rows: pd.DataFrame, run_id: str
) -> int:
    """Move `bad_rows` (batch rows with their reason) from `raw.<table>` to quarantine."""
    if bad_rows.empty:
        return 0
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    kept = bad_rows.assign(
        _quarantine_id=[uuid.uuid4().hex for _ in range(len(bad_rows))],
        _quarantined_at=now,
        _dagster_run_id=run_id,
        _replayed_at=pd.NaT,
    )
    warehouse.append(QUARANTINE_SCHEMA, contract.table, kept)
    warehouse.delete_matching("raw", contract.table, bad_rows, contract.key)
    return len(kept)


def pending_quarantine(warehouse: Warehouse, table: str) -> pd.DataFrame:
    """Quarantined rows of `table` that have not been replayed."""
    if not warehouse.table_exists(QUARANTINE_SCHEMA, table):
        return pd.DataFrame()
    return warehouse.read_table(QUARANTINE_SCHEMA, table, where='"_replayed_at" IS NULL')


def replay_quarantine(
    warehouse: Warehouse,
    contract: TableContract,
    references: dict[str, list] | None = None,
) -> tuple[int, int]:
    """Re-validate pending rows and put back into `raw` those that now pass.

    Returns (replayed, kept)."""
    pending = pending_quarantine(warehouse, contract.table)
    if pending.empty:
        return 0, 0
    rows = pending.drop(columns=[c for c in META_COLUMNS if c in pending.columns])
    # Only the row rules matter here: an empty profile keeps the table rules out of it.
    report = validate_contract(contract, rows, pd.DataFrame(columns=rows.columns), references)
    still_bad = set(report.bad_rows.index)
    good = pending.reset_index(drop=True).drop(index=list(still_bad))
    if good.empty:
        return 0, len(pending)
    restored = good.drop(columns=[c for c in META_COLUMNS if c in good.columns])
    if "_dlt_load_id" in restored.columns:
        # A fresh load id (dlt's format: epoch seconds) so that incremental builds downstream
        # (features) see the restored rows as new.
        restored["_dlt_load_id"] = f"{time.time():.6f}"
    warehouse.delete_matching("raw", contract.table, restored, contract.key)
    warehouse.append("raw", contract.table, restored)
    ids = ", ".join(f"'{i}'" for i in good["_quarantine_id"])
    warehouse.execute(
        f'UPDATE {QUARANTINE_SCHEMA}."{contract.table}" SET "_replayed_at" = :now '
        f'WHERE "_quarantine_id" IN ({ids})',
        {"now": dt.datetime.now(dt.UTC).replace(tzinfo=None)},
    )
    return len(good), len(pending) - len(good)
