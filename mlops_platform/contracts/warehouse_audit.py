"""The audit run where the landed rows are: in the warehouse, inside the publish's transaction.

`audit_in_warehouse` gives each landed row of a table its fate (publish, unchanged, bad) with
one SQL statement, into a temporary table the publish then reads, so a year of rows never
becomes a pandas frame: the landing-only rules, the choice of a key's newest version, the rows
already in `raw` and the contract's row rules (compiled from the same Great Expectations
expectations, contracts/sql_rules.py) are judged by the warehouse; the table rules are exact
SQL aggregates over the table as the publish would leave it.

Only the rows SQL found bad come back, and their reasons are written by the same code as the
pandas path's (`audit._reasons`, one text per expectation). Great Expectations stays the judge
of record: it validates every candidate row SQL flagged and a sample of the others (all of them
when there are at most `SAMPLE_ROWS`, as in a day's increment), and any row it judges
differently raises `AuditMismatch`, on which the caller rolls back and audits with GE alone.
A contract, value or column type without an exact SQL form here is audited by GE alone too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from mlops_platform.contracts.audit import (
    AUDIT_COLUMNS,
    FUTURE_RULE,
    LOAD_ID,
    MISSING_RULE,
    ROW_ID,
    Audit,
    _limit,
    _reasons,
    count_rules,
)
from mlops_platform.contracts.rules import TableContract
from mlops_platform.contracts.sql_rules import PER_KEY, SqlRule, compile_batch_rules, value_kind
from mlops_platform.contracts.validate import (
    REASON_COLUMN,
    ContractReport,
    ExpectationOutcome,
    batch_expectations,
    table_expectations,
    validate_batch,
)
from mlops_platform.ingestion import cursors
from mlops_platform.ingestion.sources import LANDING_DATASET, MISSING_COLUMNS, TYPE_ERRORS
from mlops_platform.warehouse.base import Transaction, quote

#: The temporary table of verdicts the publish reads: every landed column, then the audit's
#: own (named `FLAG...`; a landing whose columns start so is audited by GE alone).
VERDICTS = "_audit_verdicts"
FLAG = "_audit_"
FATE, CANDIDATE, FUTURE, ORDER = f"{FLAG}fate", f"{FLAG}candidate", f"{FLAG}future", f"{FLAG}order"
#: Candidate rows Great Expectations judges beside every row SQL flagged.
SAMPLE_ROWS = 5_000
PUBLISH, UNCHANGED, BAD = "publish", "unchanged", "bad"


class AuditMismatch(RuntimeError):
    """SQL and Great Expectations judged a row differently: the SQL form is not trusted."""


def plan_rules(
    contract: TableContract,
    types: dict[str, str],
    raw_types: dict[str, str] | None,
    references: dict[str, list],
) -> list[SqlRule] | None:
    """The batch rules as SQL when the whole audit has an exact SQL form for this landing
    (its columns' types), else None."""
    needed = [*contract.key, *([contract.version] if contract.version else [])]
    if contract.freshness:
        needed.append(contract.freshness[0])
    if any(c not in types for c in needed) or ROW_ID not in types or LOAD_ID not in types:
        return None
    if raw_types is not None and any(c not in raw_types for c in needed):
        return None
    times = [*contract.not_after_clock, *([contract.version] if contract.version else [])]
    if contract.freshness:
        times.append(contract.freshness[0])
    if any(c in types and value_kind(types[c]) != "time" for c in times):
        return None
    if contract.cursor in types and value_kind(types[contract.cursor]) != "time":
        return None
    columns = {c for c in types if c not in AUDIT_COLUMNS}
    expectations = batch_expectations(contract, columns, references)
    rules = compile_batch_rules(expectations, types, alias="t.")
    if rules is None:
        return None
    planned = []
    for rule in rules:
        if PER_KEY in rule.unexpected:
            if rule.column.split(",") != list(contract.key):
                return None
            # The candidates are the newest row of each key (NULLs grouping together, as in
            # pandas), so no two share one: the rule cannot fail on them (GE still checks it).
            rule = SqlRule(rule.expectation, rule.column, "FALSE")
        planned.append(rule)
    if any(c.startswith(FLAG) for c in types):
        return None
    return planned


def audit_in_warehouse(
    tx: Transaction,
    contract: TableContract,
    types: dict[str, str],
    raw_types: dict[str, str] | None,
    rules: list[SqlRule],
    references: dict[str, list],
    now: dt.datetime | None,
) -> Audit:
    """Judge every landed row of the table in `tx` (see the module docstring); the verdicts
    stay in the temporary table `VERDICTS` (each landed row, its flags and its `FATE`) for the
    publish, which reads the rows to publish from it."""
    table = contract.table
    raw = f"raw.{quote(table)}" if raw_types is not None else None
    # Times are compared and returned in UTC whatever the server's zone (naive = UTC here).
    tx.execute("SET SESSION TimeZone = 'UTC'")
    limit = _limit(now, contract)
    tx.execute(f"DROP TABLE IF EXISTS {VERDICTS}")
    tx.execute(_verdicts_sql(contract, types, raw, rules), _limit_params(contract, types, limit))

    flags = [f"{FLAG}r{i}" for i in range(len(rules))]
    counted = _count_verdicts(tx, contract, types, flags)
    counts = {str(f): int(n) for f, n in counted.groupby("fate")["n"].sum().items()}
    counts["landed"] = sum(counts.values())
    candidates = int(counted["candidates"].sum())
    load_ids = sorted({str(v) for v in counted["load_id"]})
    by_load = {
        str(load): {str(fate): int(n) for fate, n in zip(rows["fate"], rows["n"], strict=True)}
        for load, rows in counted.groupby("load_id")
    }

    landed = [c for c in types]
    bad = tx.query(
        f"SELECT {', '.join(quote(c) for c in [*landed, CANDIDATE, *flags])} FROM {VERDICTS} "
        f"WHERE {FATE} = '{BAD}' ORDER BY {ORDER}"
    )
    # The stored versions only name what a bad row is stale against: none bad, none needed.
    raw_versions = _raw_versions_of(tx, contract, raw if len(bad) else None)
    reasons = _reasons(bad, contract, raw_versions, now, limit)
    by_ge = _confirm_with_ge(tx, contract, rules, bad, flags, references, types, candidates)
    # The row rules' reasons are GE's own (it judged every row SQL flagged), as in the pandas
    # path; `_confirm_with_ge` made sure they are the rules SQL found.
    for row_id, reason in by_ge.items():
        reasons.setdefault(row_id, []).extend(reason.split("; "))
    unexplained = [i for i in bad[ROW_ID] if not reasons.get(i)]
    if unexplained:
        raise AuditMismatch(
            f"raw.{table}: SQL found {len(unexplained)} rows bad that no rule explains "
            f"(e.g. {unexplained[:3]})"
        )
    batch = _batch_outcomes(rules, flags, counted, by_ge, bad)
    table_rules, table_rows = _table_rules(tx, contract, raw, now, counted)
    outcomes = _required_columns(contract, types, raw_types) + table_rules + batch
    outcomes += _missing_outcomes(bad)

    by_rules = bad[CANDIDATE] & bad[flags].any(axis=1) if flags else bad[CANDIDATE] & False
    bad = bad.drop(columns=[CANDIDATE, *flags])
    bad[REASON_COLUMN] = ["; ".join(dict.fromkeys(reasons[i])) for i in bad[ROW_ID]]
    report = ContractReport(
        table=table,
        batch_rows=candidates,
        table_rows=table_rows,
        outcomes=outcomes,
        bad_rows=bad[by_rules],
    )
    cursor = None
    if contract.cursor in types and len(counted):
        cursor = cursors.naive(counted["newest_cursor"].max())
    return Audit(
        table=table,
        load_ids=load_ids,
        landed=pd.DataFrame(),
        publish_ids=[],
        unchanged_ids=[],
        bad=bad,
        report=report,
        cursor=cursor,
        rule_counts=count_rules(reasons),
        verdicts=VERDICTS,
        fates=counts,
        load_fates=by_load,
    )


def audit_of_nothing_landed(
    tx: Transaction,
    contract: TableContract,
    types: dict[str, str],
    raw_types: dict[str, str],
    now: dt.datetime | None,
) -> Audit | None:
    """The audit of a published table with no landed row, or None when rows are landed.

    No row to judge: the outcomes are the required columns and the table rules over `raw` as
    it stands, as `audit_in_warehouse` gives them for an empty landing, without building the
    verdicts (a day's increment lands nothing for most reference tables: their verdicts,
    counts and bad-row reads were a third of their publish's CPU)."""
    landing = f"{LANDING_DATASET}.{quote(contract.table)}"
    if len(tx.query(f"SELECT 1 AS landed FROM {landing} LIMIT 1")):
        return None
    tx.execute("SET SESSION TimeZone = 'UTC'")
    raw = f"raw.{quote(contract.table)}"
    table_rules, table_rows = _table_rules(tx, contract, raw, now, None)
    bad = pd.DataFrame(columns=[*types, REASON_COLUMN])
    report = ContractReport(
        table=contract.table,
        batch_rows=0,
        table_rows=table_rows,
        outcomes=_required_columns(contract, types, raw_types) + table_rules,
        bad_rows=bad,
    )
    return Audit(
        table=contract.table,
        load_ids=[],
        landed=pd.DataFrame(columns=list(types)),
        publish_ids=[],
        unchanged_ids=[],
        bad=bad,
        report=report,
        cursor=None,
    )


def _count_verdicts(
    tx: Transaction, contract: TableContract, types: dict[str, str], flags: list[str]
) -> pd.DataFrame:
    """One pass over the verdicts for every count the audit, the table rules and the publish
    need, per fate and batch: rows, candidates, rows each rule flagged, the newest cursor
    value of the rows that are not from the future and the newest freshness value of the
    candidates (one query instead of four: each costs a few milliseconds however few rows)."""
    cursor = contract.cursor if contract.cursor in types else None
    fresh = contract.freshness[0] if contract.freshness else None
    newest_cursor = f"max({quote(cursor)}) FILTER (WHERE NOT {FUTURE})" if cursor else "max(NULL)"
    newest_fresh = (
        f"max({quote(fresh)}) FILTER (WHERE {CANDIDATE})" if fresh in types else "max(NULL)"
    )
    return tx.query(
        f"SELECT {FATE} AS fate, {LOAD_ID} AS load_id, count(*) AS n, "
        f"count(*) FILTER (WHERE {CANDIDATE}) AS candidates, "
        f"{newest_cursor} AS newest_cursor, {newest_fresh} AS newest_fresh"
        + "".join(f", count(*) FILTER (WHERE {f}) AS {f}" for f in flags)
        + f" FROM {VERDICTS} GROUP BY ALL"
    )


def _col(name: str, alias: str = "t.") -> str:
    return f"{alias}{quote(name)}"


def _key_match(key: list[str], left: str, right: str) -> str:
    return " AND ".join(f"{left}{quote(c)} IS NOT DISTINCT FROM {right}{quote(c)}" for c in key)


def _limit_params(contract: TableContract, types: dict[str, str], limit: dt.datetime) -> dict:
    aware = limit.replace(tzinfo=dt.UTC)
    return {
        f"limit_{i}": aware if "WITH TIME ZONE" in types[c].upper() else limit
        for i, c in enumerate(contract.not_after_clock)
        if c in types
    }


def _verdicts_sql(
    contract: TableContract, types: dict[str, str], raw: str | None, rules: list[SqlRule]
) -> str:
    """One statement: each landed row with its landing-rule flags, whether it is a candidate
    (the newest version of its key, not already in raw), its row-rule flags and its fate."""
    key = list(contract.key)
    landing = f"{LANDING_DATASET}.{quote(contract.table)}"
    missing_flag = f"{_col(MISSING_COLUMNS)} IS NOT NULL" if MISSING_COLUMNS in types else "FALSE"
    type_flag = f"{_col(TYPE_ERRORS)} IS NOT NULL" if TYPE_ERRORS in types else "FALSE"
    future = [
        f"coalesce({_col(c)} > $limit_{i}, FALSE)"
        for i, c in enumerate(contract.not_after_clock)
        if c in types
    ]
    future_flag = " OR ".join(future) or "FALSE"
    version = contract.version
    order = f"{quote(version)} DESC NULLS FIRST, " if version else ""
    stale = same = "FALSE"
    stored, stored_join = "", ""
    if raw and version:
        # Whether raw holds a newer or the same version of a landed row's key, from one join
        # of the landed rows to raw, grouped by landed row (DuckDB builds its hash table on the
        # day's landed rows and scans raw once). Two EXISTS probes built a hash table of all of
        # raw each, twice a publish, growing with the table (25 -> 8 ms CPU at 257,000 stored
        # rows and 1,900 landed). The same rows are flagged: EXISTS is true exactly when some
        # joined row's comparison is true, which is what bool_or (NULLs ignored) answers.
        match = _key_match(key, "r.", "t.")
        v = quote(version)
        stored = (
            f"stored AS (SELECT t.rowid AS {ORDER}, bool_or(r.{v} > t.{v}) AS {FLAG}newer, "
            f"bool_or(r.{v} = t.{v}) AS {FLAG}equal FROM {landing} t JOIN {raw} r ON {match} "
            f"GROUP BY t.rowid), "
        )
        stored_join = f" LEFT JOIN stored s ON s.{ORDER} = t.{ORDER}"
        stale = f"coalesce(s.{FLAG}newer, FALSE)"
        same = f"coalesce(s.{FLAG}equal, FALSE)"
    flags = "".join(
        f", coalesce({CANDIDATE} AND ({rule.unexpected}), FALSE) AS {FLAG}r{i}"
        for i, rule in enumerate(rules)
    )
    any_rule = " OR ".join(f"{FLAG}r{i}" for i in range(len(rules))) or "FALSE"
    landed = ", ".join(_col(c) for c in types)
    m, ty, fu, du, st = (f"{FLAG}{n}" for n in ("missing", "types", "future", "dup", "stale"))
    plain = ", ".join(quote(c) for c in key)
    grouped = _key_match(key, "t.", "g.")
    window = f"PARTITION BY {plain} ORDER BY {order}{LOAD_ID} DESC, {ROW_ID} DESC"
    # Most keys land once: their row is its key's newest and no duplicate. Versions are ranked
    # (and duplicates within a batch counted) only for keys landed more than once: a window
    # over every row costs 3x a grouped count (py-spy and DuckDB timings on the year). Only
    # the keys landed more than once are joined back (usually none): joining every key's count
    # built a hash table of every key (a fifth of this statement's CPU on the year, half its
    # wall time). The landing order (rowid) is kept so bad rows come back as the pandas path
    # lists them.
    return f"""
    CREATE TEMP TABLE {VERDICTS} AS
    WITH keyed AS (
        SELECT {landed}, t.rowid AS {ORDER}, coalesce(g.{FLAG}n, 1) AS {FLAG}n
        FROM {landing} t LEFT JOIN (
            SELECT {plain}, count(*) AS {FLAG}n FROM {landing} GROUP BY ALL HAVING count(*) > 1
        ) g ON {grouped}
    ), ranked AS (
        SELECT *, 1 AS {FLAG}rank, FALSE AS {du} FROM keyed WHERE {FLAG}n = 1
        UNION ALL
        SELECT *, row_number() OVER ({window}) AS {FLAG}rank,
            count(*) OVER (PARTITION BY {plain}, {LOAD_ID}) > 1 AS {du}
        FROM keyed WHERE {FLAG}n > 1
    ), {stored}flagged AS (
        SELECT t.*,
            {missing_flag} AS {m}, {type_flag} AS {ty}, {future_flag} AS {fu},
            {stale} AS {st}, {same} AS {FLAG}same
        FROM ranked t{stored_join}
    ), judged AS (
        SELECT t.*,
            {m} OR {ty} OR {fu} OR {du} OR {st} AS {FLAG}landing,
            -- the newest version of its key (unless landed twice in its batch), not in raw
            {FLAG}rank = 1
              AND NOT ({du} AND NOT ({m} OR {ty} OR {fu}))
              AND NOT ({FLAG}same AND NOT ({m} OR {ty} OR {fu} OR {du} OR {st}))
              AS {CANDIDATE}
        FROM flagged t
    ), ruled AS (
        SELECT t.*{flags} FROM judged t
    )
    SELECT *, CASE WHEN {FLAG}landing OR {any_rule} THEN '{BAD}'
                   WHEN {CANDIDATE} THEN '{PUBLISH}' ELSE '{UNCHANGED}' END AS {FATE}
    FROM ruled
    """


def _raw_versions_of(tx: Transaction, contract: TableContract, raw: str | None) -> pd.DataFrame:
    """Stored keys and versions of the bad rows' keys (what the stale rule's reason names)."""
    if raw is None or not contract.version:
        return pd.DataFrame(columns=contract.key)
    wanted = ", ".join(f"r.{quote(c)}" for c in dict.fromkeys([*contract.key, contract.version]))
    match = _key_match(list(contract.key), "r.", "v.")
    return tx.query(
        f"SELECT {wanted} FROM {raw} r WHERE EXISTS (SELECT 1 FROM {VERDICTS} v "
        f"WHERE v.{FATE} = '{BAD}' AND {match})"
    )


def _confirm_with_ge(
    tx: Transaction,
    contract: TableContract,
    rules: list[SqlRule],
    bad: pd.DataFrame,
    flags: list[str],
    references: dict[str, list],
    types: dict[str, str],
    candidates: int,
) -> dict[str, str]:
    """Great Expectations on every candidate SQL flagged and a sample of the rest (all of them
    up to `SAMPLE_ROWS`); returns GE's reasons for the rows it found bad, which must be the
    rules SQL found (else `AuditMismatch`)."""
    if not candidates:
        return {}
    columns = [c for c in types if c not in AUDIT_COLUMNS]
    flagged = bad.loc[bad[CANDIDATE] & bad[flags].any(axis=1), columns] if flags else bad.iloc[:0]
    any_rule = " OR ".join(flags) or "FALSE"
    others = (
        f"SELECT {', '.join(quote(c) for c in columns)} FROM {VERDICTS} "
        f"WHERE {CANDIDATE} AND NOT ({any_rule})"
    )
    if candidates - len(flagged) > SAMPLE_ROWS:
        others = f"SELECT * FROM ({others}) s USING SAMPLE reservoir({SAMPLE_ROWS} ROWS)"
    sample = tx.query(others)
    evidence = pd.concat([f for f in (flagged, sample) if len(f)] or [sample], ignore_index=True)
    _, _, ge_bad = validate_batch(contract, evidence, references)
    ge_reasons = dict(zip(ge_bad[ROW_ID], ge_bad[REASON_COLUMN], strict=True))
    by_ge = {row_id: set(reason.split("; ")) for row_id, reason in ge_reasons.items()}
    by_sql: dict = {}
    row_ids = bad[ROW_ID].to_numpy()
    for hits, rule in zip(_flagged_by_rule(bad, flags).values(), rules, strict=True):
        for row_id in row_ids[hits]:
            by_sql.setdefault(row_id, set()).add(rule.reason)
    differ = {
        i: (by_sql.get(i, set()), by_ge.get(i, set()))
        for i in evidence[ROW_ID]
        if by_sql.get(i, set()) != by_ge.get(i, set())
    }
    if differ:
        raise AuditMismatch(
            f"raw.{contract.table}: SQL and Great Expectations judged {len(differ)} of "
            f"{len(evidence)} rows differently (row: (SQL, GE)): {list(differ.items())[:3]}"
        )
    return ge_reasons


def _batch_outcomes(
    rules: list[SqlRule],
    flags: list[str],
    counted: pd.DataFrame,
    by_ge: dict[str, str],
    bad: pd.DataFrame,
) -> list[ExpectationOutcome]:
    """One outcome per row rule, with SQL's exact count of unexpected rows and (as GE's
    result shows them) the first few offending values."""
    if not int(counted["candidates"].sum()):
        return []
    outcomes = []
    for (flag, hits), rule in zip(_flagged_by_rule(bad, flags).items(), rules, strict=True):
        count = int(counted[flag].sum())
        column = rule.column if rule.column in bad else None
        observed = ""
        if column and hits.any():
            observed = ", ".join(str(v) for v in bad.loc[hits, column].head(5))
        outcomes.append(
            ExpectationOutcome("batch", rule.expectation, rule.column, count == 0, count, observed)
        )
    return outcomes


def _flagged_by_rule(bad: pd.DataFrame, flags: list[str]) -> dict[str, Any]:
    """Each rule's flag: which of the bad rows it flagged as candidates, a NumPy mask in row
    order. Read once per use as arrays: a pandas `&` and `.loc` per rule (~0.35 ms each, a
    contract of 26 rules, read twice) were 18 ms of a day's audit of the example domain."""
    candidate = bad[CANDIDATE].to_numpy(dtype=bool, na_value=False)
    return {flag: candidate & bad[flag].to_numpy(dtype=bool, na_value=False) for flag in flags}


def _required_columns(
    contract: TableContract, types: dict[str, str], raw_types: dict[str, str] | None
) -> list[ExpectationOutcome]:
    present = (set(types) - set(AUDIT_COLUMNS)) | set(raw_types or {})
    return [
        ExpectationOutcome(
            "table",
            MISSING_RULE,
            column,
            column in present,
            0 if column in present else 1,
            "present" if column in present else "missing",
        )
        for column in contract.required_columns
    ]


def _table_rules(
    tx: Transaction,
    contract: TableContract,
    raw: str | None,
    now: dt.datetime | None,
    counted: pd.DataFrame | None,
) -> tuple[list[ExpectationOutcome], int]:
    """Row count, whole-table key uniqueness and freshness of the table as the publish would
    leave it (raw's rows whose key no candidate replaces, and the candidates, counted in
    `counted`; None: no verdicts, raw as it stands), as exact SQL aggregates with the
    outcomes Great Expectations gives (`validate.table_expectations`).

    Candidates are one row per key and replace every stored row of their key, so the keys
    that can repeat are those of the stored rows kept: only they are grouped."""
    key = list(contract.key)
    fresh = contract.freshness[0] if contract.freshness and now is not None else None
    columns = list(dict.fromkeys([*key, *([fresh] if fresh else [])]))
    newest = f"max({quote(fresh)})" if fresh else "max(NULL)"
    # The candidates' count and newest freshness value, from the verdicts' counts.
    rows, duplicated, latest = 0, 0, [None]
    if counted is not None:
        rows = int(counted["candidates"].sum())
        latest = [counted["newest_fresh"].max() if fresh and len(counted) else None]
    if raw:
        all_missing = " AND ".join(f"{quote(c)} IS NULL" for c in key)
        kept = f"SELECT {', '.join(f'r.{quote(c)}' for c in columns)} FROM {raw} r"
        if counted is not None:
            kept += (
                f" WHERE NOT EXISTS (SELECT 1 FROM {VERDICTS} c WHERE c.{CANDIDATE} AND "
                f"{_key_match(key, 'c.', 'r.')})"
            )
        repeated = (
            f"SELECT count(*) AS k FROM kept WHERE NOT ({all_missing}) "
            f"GROUP BY {', '.join(quote(c) for c in key)} HAVING count(*) > 1"
        )
        stored = tx.query(
            f"WITH kept AS ({kept}) SELECT (SELECT count(*) FROM kept) AS n, "
            f"(SELECT {newest} FROM kept) AS newest, "
            f"(SELECT coalesce(sum(k), 0) FROM ({repeated}) d) AS duplicated"
        )
        rows += int(stored["n"].iloc[0])
        duplicated = int(stored["duplicated"].iloc[0])
        latest.append(stored["newest"].iloc[0])
    stamps = [v for v in (cursors.naive(v) for v in latest) if v is not None]
    freshest = max(stamps) if stamps else None
    outcomes = []
    for expectation in table_expectations(contract, now):
        kind = expectation.configuration.type
        kwargs = expectation.configuration.kwargs
        if kind == "expect_table_row_count_to_be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            ok = (low is None or rows >= low) and (high is None or rows <= high)
            outcomes.append(ExpectationOutcome("table", kind, "*", ok, 0, str(rows)))
        elif kind in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
            outcomes.append(
                ExpectationOutcome(
                    "table", kind, ",".join(key), duplicated == 0, duplicated,
                    f"{duplicated} rows share a key" if duplicated else "",
                )
            )  # fmt: skip
        elif kind == "expect_column_max_to_be_between":
            newest = freshest if fresh else None
            low = kwargs.get("min_value")
            ok = newest is not None and (low is None or pd.Timestamp(newest) >= pd.Timestamp(low))
            outcomes.append(ExpectationOutcome("table", kind, kwargs["column"], ok, 0, str(newest)))
        else:  # a table rule without an SQL form here: judged by GE alone
            raise AuditMismatch(f"table rule {kind} has no SQL form")
    return outcomes, rows


def _missing_outcomes(bad: pd.DataFrame) -> list[ExpectationOutcome]:
    """One failed outcome per column some landed rows lacked at the source."""
    if MISSING_COLUMNS not in bad:
        return []
    lists = bad[MISSING_COLUMNS].dropna().str.split(",")
    counts: dict[str, int] = {}
    for columns in lists:
        for column in set(columns):
            counts[column] = counts.get(column, 0) + 1
    return [
        ExpectationOutcome("batch", MISSING_RULE, c, False, counts[c], "not at the source")
        for c in sorted(counts)
    ]


__all__ = [
    "FUTURE_RULE",
    "AuditMismatch",
    "audit_in_warehouse",
    "audit_of_nothing_landed",
    "plan_rules",
]
