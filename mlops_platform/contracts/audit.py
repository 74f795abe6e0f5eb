"""Audit the batches landed in `landing.<table>` (the A of write-audit-publish; no writes).

`audit_landed` reads every pending landed row of a table (nothing is pending once published) and
judges it: the contract's row rules (Great Expectations), plus the rules only a landing can see:
required columns absent at the source, cells of the wrong type, times beyond the source's clock,
versions older than the row already in `raw`, and duplicate keys within one batch. Of a key's
pending versions the newest is kept. `find_deleted` finds raw rows whose key the source no
longer has.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.validate import (
    REASON_COLUMN,
    ContractReport,
    ExpectationOutcome,
    utc_times,
    validate_contract,
)
from mlops_platform.ingestion import cursors
from mlops_platform.ingestion.sources import (
    LANDING_DATASET,
    MISSING_COLUMNS,
    TYPE_ERRORS,
)
from mlops_platform.warehouse import WarehouseStore
from mlops_platform.warehouse.base import quote

LOAD_ID, ROW_ID = "_dlt_load_id", "_dlt_id"
#: Landing-only columns: they describe a landed row and are never published.
AUDIT_COLUMNS = (MISSING_COLUMNS, TYPE_ERRORS)
#: Rule names used in reasons (besides the Great Expectations expectation types).
MISSING_RULE = "expect_column_to_exist"
TYPE_RULE = "expect_column_values_to_be_of_type"
FUTURE_RULE = "expect_not_after_source_clock"
STALE_RULE = "expect_version_not_older_than_stored"
DUPLICATE_RULE = "expect_compound_columns_to_be_unique"
DELETED_RULE = "expect_row_present_at_source"


@dataclass
class Audit:
    table: str
    load_ids: list[str]
    landed: pd.DataFrame
    #: landed rows to publish (newest version of their key, passing, newer than raw)
    publish_ids: list[str]
    #: landed rows already in raw at the same version (re-read at the cursor) or superseded
    unchanged_ids: list[str]
    #: failing landed rows, with `_quarantine_reason`
    bad: pd.DataFrame
    report: ContractReport
    cursor: dt.datetime | None
    rule_counts: dict[str, int] = field(default_factory=dict)
    #: Set when the audit ran in the warehouse (contracts/warehouse_audit.py): the temporary
    #: table of each landed row's fate, in the open transaction the publish must use, and how
    #: many rows have each fate (`landed` and the id lists are then left empty).
    verdicts: str | None = None
    fates: dict[str, int] = field(default_factory=dict)
    #: The same per landed batch: {load id: {fate: rows}} (warehouse audit only).
    load_fates: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.report.success and self.bad.empty

    @property
    def landed_rows(self) -> int:
        return self.fates.get("landed", 0) if self.verdicts else len(self.landed)

    @property
    def published_rows(self) -> int:
        return self.fates.get("publish", 0) if self.verdicts else len(self.publish_ids)

    @property
    def unchanged_rows(self) -> int:
        return self.fates.get("unchanged", 0) if self.verdicts else len(self.unchanged_ids)


def _limit(now: dt.datetime | None, contract: TableContract) -> dt.datetime:
    wall = cursors.utcnow()
    return min(now or wall, wall) + contract.future_tolerance


def _reasons(
    frame: pd.DataFrame,
    contract: TableContract,
    raw_versions: pd.DataFrame,
    now,
    limit: dt.datetime | None = None,
) -> dict[str, list[str]]:
    """Landing-only row rules: {row id: [reason, ...]}. `limit`: the latest time allowed (by
    default the source's clock, or now, plus the contract's tolerance)."""
    found: dict[str, list[str]] = {}

    def add(mask: pd.Series, reason) -> None:
        for row_id, value in frame.loc[mask, ROW_ID].items():
            found.setdefault(value, []).append(reason(row_id) if callable(reason) else reason)

    if MISSING_COLUMNS in frame:
        missing = frame[MISSING_COLUMNS].notna()
        add(missing, lambda i: f"{MISSING_RULE}({frame.at[i, MISSING_COLUMNS]}): not at the source")
    if TYPE_ERRORS in frame:
        add(frame[TYPE_ERRORS].notna(), lambda i: f"{TYPE_RULE}: {frame.at[i, TYPE_ERRORS]}")
    limit = limit or _limit(now, contract)
    for column in contract.not_after_clock:
        if column in frame:
            times = utc_times(frame[column]).dt.tz_localize(None)
            add(times > limit, lambda i, c=column, t=times: f"{FUTURE_RULE}({c}): {t[i]}")
    key = contract.key
    duplicate = frame.duplicated([*key, LOAD_ID], keep=False)
    add(duplicate, f"{DUPLICATE_RULE}({','.join(key)})")
    if contract.version and not raw_versions.empty:
        # Compared as columns, and only the stale rows visited: iterating every landed row's
        # times boxed each one (most of a day's audit in the increment profile).
        against = _against_stored(frame, raw_versions, contract)
        stale = against[against["mine"] < against["stored"]]
        for row_id, stored in zip(stale[ROW_ID], stale["stored"], strict=True):
            reason = f"{STALE_RULE}({contract.version}): stored {stored}"
            found.setdefault(row_id, []).append(reason)
    return found


def _against_stored(
    frame: pd.DataFrame, raw_versions: pd.DataFrame, contract: TableContract
) -> pd.DataFrame:
    """(row id, its version, the stored version) for landed rows whose key is in raw."""
    version, key = contract.version, contract.key
    stored = (
        raw_versions.rename(columns={version: "_stored"})
        if version not in key
        else (raw_versions.assign(_stored=raw_versions[version]))
    )
    joined = frame[[ROW_ID, *dict.fromkeys([*key, version])]].merge(stored, on=key)
    return pd.DataFrame(
        {
            ROW_ID: joined[ROW_ID],
            "mine": utc_times(joined[version]),
            "stored": utc_times(joined["_stored"]),
        }
    )


def _raw_versions(warehouse: WarehouseStore, contract: TableContract) -> pd.DataFrame:
    if not warehouse.table_exists("raw", contract.table):
        return pd.DataFrame(columns=contract.key)
    wanted = list(dict.fromkeys([*contract.key, *([contract.version] if contract.version else [])]))
    return warehouse.query(
        f"SELECT {', '.join(quote(c) for c in wanted)} FROM raw.{quote(contract.table)}"
    )


def audit_landed(
    warehouse: WarehouseStore,
    contract: TableContract,
    references: dict[str, list],
    now: dt.datetime | None,
) -> Audit:
    table = contract.table
    if warehouse.table_exists(LANDING_DATASET, table):
        landed = warehouse.read_table(LANDING_DATASET, table)
    else:
        landed = pd.DataFrame(columns=[*contract.key, LOAD_ID, ROW_ID])
    raw_versions = _raw_versions(warehouse, contract)
    reasons = _reasons(landed, contract, raw_versions, now)

    # A key's newest pending version is judged; older ones (earlier batches) are superseded.
    # Chosen on the key, version and ids alone: the landed rows' other columns are taken once,
    # for the rows judged (sorting and filtering the whole landed frame copied all its columns
    # at each step: a fifth of the audit outside Great Expectations on the benchmark's year).
    order = [contract.version] if contract.version else []
    chosen = [c for c in dict.fromkeys([*contract.key, *order, LOAD_ID, ROW_ID]) if c in landed]
    newest = landed[chosen].sort_values([*order, LOAD_ID])
    newest = newest.drop_duplicates(contract.key, keep="last")
    newest = newest[~newest[ROW_ID].isin([r for r in reasons if "unique" in reasons[r][0]])]
    # Rows already in raw at the same version (re-read at the cursor: a day's re-read holds
    # more of them than new rows) passed this contract when they were published: not judged
    # again, they stay unchanged.
    unchanged: set = set()
    if contract.version and not raw_versions.empty:
        same = _against_stored(newest, raw_versions, contract)
        unchanged = set(same.loc[same["mine"] == same["stored"], ROW_ID]) - set(reasons)
    judged = newest.index[~newest[ROW_ID].isin(unchanged)]
    candidates = landed.loc[judged, [c for c in landed.columns if c not in AUDIT_COLUMNS]]
    candidates.index = pd.RangeIndex(len(candidates))  # a new frame: renumbered, not copied
    profile = _profile_after(warehouse, contract, candidates, raw_versions)
    report = validate_contract(contract, candidates, profile, references, now=now)
    if len(report.bad_rows):
        pairs = zip(report.bad_rows[ROW_ID], report.bad_rows[REASON_COLUMN], strict=True)
        for row_id, reason in pairs:
            reasons.setdefault(row_id, []).extend(reason.split("; "))
    missing = sorted(
        {
            c
            for v in landed.get(MISSING_COLUMNS, pd.Series(dtype=object)).dropna()
            for c in v.split(",")
        }
    )
    for column in missing:
        count = int(
            landed[MISSING_COLUMNS]
            .fillna("")
            .str.split(",")
            .apply(lambda v, c=column: c in v)
            .sum()
        )
        report.outcomes.append(
            ExpectationOutcome("batch", MISSING_RULE, column, False, count, "not at the source")
        )

    bad = landed[landed[ROW_ID].isin(reasons)].copy()
    bad[REASON_COLUMN] = ["; ".join(dict.fromkeys(reasons[i])) for i in bad[ROW_ID]]
    good = newest[~newest[ROW_ID].isin(reasons)]
    unchanged |= set(landed[ROW_ID]) - set(good[ROW_ID]) - set(reasons)
    publish_ids = [i for i in good[ROW_ID] if i not in unchanged]

    future = {i for i, r in reasons.items() if any(x.startswith(FUTURE_RULE) for x in r)}
    cursor_column = contract.cursor
    cursor = None
    if cursor_column in landed and len(landed):
        moving = landed.loc[~landed[ROW_ID].isin(future), cursor_column]
        cursor = cursors.naive(utc_times(moving).max()) if len(moving) else None
    return Audit(
        table=table,
        load_ids=sorted(landed[LOAD_ID].astype(str).unique()),
        landed=landed,
        publish_ids=publish_ids,
        unchanged_ids=sorted(unchanged),
        bad=bad,
        report=report,
        cursor=cursor,
        rule_counts=count_rules(reasons),
    )


def _profile_after(warehouse, contract, candidates, raw_versions) -> pd.DataFrame:
    """Key and freshness columns of the table as the publish would leave it."""
    columns = list(
        dict.fromkeys([*contract.key, *([contract.freshness[0]] if contract.freshness else [])])
    )
    present = warehouse.columns("raw", contract.table) if len(raw_versions.columns) else []
    stored = pd.DataFrame(columns=columns)
    if warehouse.table_exists("raw", contract.table):
        selected = [c for c in columns if c in present]
        stored = warehouse.query(
            f"SELECT {', '.join(quote(c) for c in selected)} FROM raw.{quote(contract.table)}"
        )
    fresh = candidates[[c for c in columns if c in candidates]]
    merged = after_publish(stored, fresh, list(contract.key))
    extra = [c for c in [*present, *candidates.columns] if c not in merged]
    return merged.reindex(columns=[*merged.columns, *dict.fromkeys(extra)])


def after_publish(stored: pd.DataFrame, fresh: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The table as a publish leaves it: each fresh row replaces the stored rows of its key (the
    publish deletes by key, then inserts). Stored rows are not deduplicated among themselves, so
    a table that already holds a key twice still fails the whole-table unique-key rule."""
    if len(stored) and len(fresh):
        replaced = pd.MultiIndex.from_frame(stored[key]).isin(pd.MultiIndex.from_frame(fresh[key]))
        stored = stored[~replaced]
    parts = [f for f in (stored, fresh) if len(f)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts or [stored])[0]


def find_deleted(
    warehouse: WarehouseStore, contract: TableContract, source_keys: Any
) -> pd.DataFrame:
    """Rows of `raw.<table>` whose key the source no longer holds (`source_keys`: a pandas
    frame or an Arrow table), with the reason. No rows before the table is published
    (`rows_without_key` answers that in the connection it reads with: a look-up fewer)."""
    rows = warehouse.rows_without_key("raw", contract.table, source_keys, contract.key)
    if rows.empty:
        return pd.DataFrame()
    return rows.assign(**{REASON_COLUMN: f"{DELETED_RULE}: deleted at the source"})


def count_rules(reasons: dict) -> dict[str, int]:
    """How many rows each rule refused (a row counts once per rule, whatever its columns)."""
    counts: dict[str, int] = {}
    for row_reasons in reasons.values():
        for rule in {r.split("(")[0].split(":")[0] for r in row_reasons}:
            counts[rule] = counts.get(rule, 0) + 1
    return counts
