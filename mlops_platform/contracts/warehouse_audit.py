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

#: The temporary table of verdicts (one row per landed row) the publish reads.
VERDICTS = "_audit_verdicts"
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
    for rule in rules:
        if PER_KEY in rule.unexpected and rule.column.split(",") != list(contract.key):
            return None
    return rules


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
    stay in the temporary table `VERDICTS` for the publish."""
    table = contract.table
    landing = f"{LANDING_DATASET}.{quote(table)}"
    raw = f"raw.{quote(table)}" if raw_types is not None else None
    # Times are compared and returned in UTC whatever the server's zone (naive = UTC here).
    tx.execute("SET SESSION TimeZone = 'UTC'")
    limit = _limit(now, contract)
    tx.execute(f"DROP TABLE IF EXISTS {VERDICTS}")
    tx.execute(_verdicts_sql(contract, types, raw, rules), _limit_params(contract, types, limit))

    fates = tx.query(
        f"SELECT fate, count(*) AS n, count(DISTINCT {LOAD_ID}) AS loads FROM {VERDICTS} "
        "GROUP BY fate"
    )
    counts = {str(f): int(n) for f, n in zip(fates["fate"], fates["n"], strict=True)}
    counts["landed"] = sum(counts.values())
    load_ids = sorted(
        str(v) for v in tx.query(f"SELECT DISTINCT {LOAD_ID} AS l FROM {VERDICTS}")["l"]
    )

    flags = [f"_r{i}" for i in range(len(rules))]
    bad = tx.query(
        f"SELECT t.*, v._candidate, {', '.join(f'v.{f}' for f in flags) or 'NULL AS _none'} "
        f"FROM {landing} t JOIN {VERDICTS} v USING ({ROW_ID}) WHERE v.fate = '{BAD}' "
        "ORDER BY t.rowid"
    )
    raw_versions = _raw_versions_of(tx, contract, raw, landing)
    reasons = _reasons(bad, contract, raw_versions, now, limit)
    batch, candidates, by_ge = _confirm_with_ge(
        tx, contract, rules, bad, flags, references, landing
    )
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
    table_rules, table_rows = _table_rules(tx, contract, raw, landing, now)
    outcomes = _required_columns(contract, types, raw_types) + table_rules + batch
    outcomes += _missing_outcomes(bad)

    by_rules = bad["_candidate"] & bad[flags].any(axis=1) if flags else bad["_candidate"] & False
    bad = bad.drop(columns=["_candidate", *flags, "_none"], errors="ignore")
    bad[REASON_COLUMN] = ["; ".join(dict.fromkeys(reasons[i])) for i in bad[ROW_ID]]
    report = ContractReport(
        table=table,
        batch_rows=candidates,
        table_rows=table_rows,
        outcomes=outcomes,
        bad_rows=bad[by_rules],
    )
    cursor = None
    if contract.cursor and contract.cursor in types:
        newest = tx.query(
            f"SELECT max(t.{quote(contract.cursor)}) AS m FROM {landing} t "
            f"JOIN {VERDICTS} v USING ({ROW_ID}) WHERE NOT v._future"
        )["m"]
        cursor = cursors.naive(newest.iloc[0]) if len(newest) else None
    rule_counts: dict[str, int] = {}
    for row_reasons in reasons.values():
        for rule in {r.split("(")[0].split(":")[0] for r in row_reasons}:
            rule_counts[rule] = rule_counts.get(rule, 0) + 1
    return Audit(
        table=table,
        load_ids=load_ids,
        landed=pd.DataFrame(),
        publish_ids=[],
        unchanged_ids=[],
        bad=bad,
        report=report,
        cursor=cursor,
        rule_counts=rule_counts,
        verdicts=VERDICTS,
        fates=counts,
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
    """One statement: each landed row's landing-rule flags, whether it is a candidate (the
    newest version of its key, not already in raw), its row-rule flags and its fate."""
    key = list(contract.key)
    keys = ", ".join(_col(c) for c in key)
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
    order = f"{_col(version)} DESC NULLS FIRST, " if version else ""
    stale = same = "FALSE"
    if raw and version:
        match = _key_match(key, "r.", "t.")
        stale = f"EXISTS (SELECT 1 FROM {raw} r WHERE {match} AND r.{quote(version)} > t.{quote(version)})"  # noqa: E501
        same = f"EXISTS (SELECT 1 FROM {raw} r WHERE {match} AND r.{quote(version)} = t.{quote(version)})"  # noqa: E501
    flags = ", ".join(
        f"coalesce(_candidate AND ({rule.unexpected}), FALSE) AS _r{i}"
        for i, rule in enumerate(rules)
    )
    any_rule = " OR ".join(f"_r{i}" for i in range(len(rules))) or "FALSE"
    return f"""
    CREATE TEMP TABLE {VERDICTS} AS
    WITH flagged AS (
        SELECT t.*,
            {missing_flag} AS _missing, {type_flag} AS _types, {future_flag} AS _future,
            count(*) OVER (PARTITION BY {keys}, t.{LOAD_ID}) > 1 AS _duplicate,
            row_number() OVER (
                PARTITION BY {keys} ORDER BY {order}t.{LOAD_ID} DESC, t.{ROW_ID} DESC
            ) AS _rank,
            {stale} AS _stale, {same} AS _same
        FROM {landing} t
    ), judged AS (
        SELECT t.*,
            _missing OR _types OR _future OR _duplicate OR _stale AS _landing_bad,
            _rank = 1
              AND NOT (_duplicate AND NOT (_missing OR _types OR _future))
              AND NOT (_same AND NOT (_missing OR _types OR _future OR _duplicate OR _stale))
              AS _candidate
        FROM flagged t
    ), keyed AS (
        SELECT t.*, sum(CASE WHEN _candidate THEN 1 ELSE 0 END) OVER (PARTITION BY {keys})
            AS {PER_KEY}
        FROM judged t
    ), ruled AS (
        SELECT t.{ROW_ID}, t.{LOAD_ID}, _future, _candidate, _landing_bad
            {", " + flags if flags else ""}
        FROM keyed t
    )
    SELECT *, CASE WHEN _landing_bad OR {any_rule} THEN '{BAD}'
                   WHEN _candidate THEN '{PUBLISH}' ELSE '{UNCHANGED}' END AS fate
    FROM ruled
    """


def _raw_versions_of(
    tx: Transaction, contract: TableContract, raw: str | None, landing: str
) -> pd.DataFrame:
    """Stored keys and versions of the bad rows' keys (what the stale rule's reason names)."""
    if raw is None or not contract.version:
        return pd.DataFrame(columns=contract.key)
    wanted = ", ".join(f"r.{quote(c)}" for c in dict.fromkeys([*contract.key, contract.version]))
    match = _key_match(list(contract.key), "r.", "t.")
    return tx.query(
        f"SELECT {wanted} FROM {raw} r WHERE EXISTS (SELECT 1 FROM {landing} t "
        f"JOIN {VERDICTS} v USING ({ROW_ID}) WHERE v.fate = '{BAD}' AND {match})"
    )


def _confirm_with_ge(
    tx: Transaction,
    contract: TableContract,
    rules: list[SqlRule],
    bad: pd.DataFrame,
    flags: list[str],
    references: dict[str, list],
    landing: str,
) -> tuple[list[ExpectationOutcome], int, dict[str, str]]:
    """Great Expectations on every candidate SQL flagged and a sample of the rest (all of them
    up to `SAMPLE_ROWS`); returns the batch outcomes, with SQL's exact counts, how many
    candidates there were, and GE's reasons for the rows it found bad."""
    columns = ", ".join(
        f"t.{quote(c)}"
        for c in tx.query(f"SELECT * FROM {landing} LIMIT 0").columns
        if c not in AUDIT_COLUMNS
    )
    any_rule = " OR ".join(f"v.{f}" for f in flags) or "FALSE"
    counted = tx.query(
        f"SELECT count(*) AS n, {', '.join(f'count(*) FILTER (WHERE v.{f}) AS {f}' for f in flags) or '0 AS _none'} "  # noqa: E501
        f"FROM {VERDICTS} v WHERE v._candidate"
    )
    candidates = int(counted["n"].iloc[0])
    if not candidates:
        return [], 0, {}
    joined = f"FROM {landing} t JOIN {VERDICTS} v USING ({ROW_ID})"
    flagged = tx.query(f"SELECT {columns} {joined} WHERE v._candidate AND ({any_rule})")
    others = f"SELECT {columns} {joined} WHERE v._candidate AND NOT ({any_rule})"
    if candidates - len(flagged) > SAMPLE_ROWS:
        others = f"SELECT * FROM ({others}) s USING SAMPLE reservoir({SAMPLE_ROWS} ROWS)"
    sample = tx.query(others)
    evidence = pd.concat([f for f in (flagged, sample) if len(f)] or [flagged], ignore_index=True)
    _, ge_outcomes, ge_bad = validate_batch(contract, evidence, references)
    ge_reasons = dict(zip(ge_bad[ROW_ID], ge_bad[REASON_COLUMN], strict=True))
    by_ge = {row_id: set(reason.split("; ")) for row_id, reason in ge_reasons.items()}
    sql_rows = bad[bad["_candidate"]] if len(bad) else bad
    by_sql: dict = {}
    for flag, rule in zip(flags, rules, strict=True):
        for row_id in sql_rows.loc[sql_rows[flag], ROW_ID]:
            by_sql.setdefault(row_id, set()).add(rule.reason)
    differ = {
        i: (by_sql.get(i, set()), by_ge.get(i, set()))
        for i in evidence[ROW_ID]
        if by_sql.get(i, set()) != by_ge.get(i, set())
    }
    if differ:
        sample_rows = list(differ.items())[:3]
        raise AuditMismatch(
            f"raw.{contract.table}: SQL and Great Expectations judged {len(differ)} of "
            f"{len(evidence)} rows differently (row: (SQL, GE)): {sample_rows}"
        )
    observed = {(o.expectation, o.column): o.observed for o in ge_outcomes}
    outcomes = []
    for flag, rule in zip(flags, rules, strict=True):
        count = int(counted[flag].iloc[0])
        outcomes.append(
            ExpectationOutcome(
                "batch",
                rule.expectation,
                rule.column,
                count == 0,
                count,
                observed.get((rule.expectation, rule.column), "") if count else "",
            )
        )
    return outcomes, candidates, ge_reasons


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
    landing: str,
    now: dt.datetime | None,
) -> tuple[list[ExpectationOutcome], int]:
    """Row count, whole-table key uniqueness and freshness of the table as the publish would
    leave it (raw's rows whose key no candidate replaces, and the candidates), as exact SQL
    aggregates with the outcomes Great Expectations gives (`validate.table_expectations`)."""
    key = list(contract.key)
    fresh = contract.freshness[0] if contract.freshness and now is not None else None
    columns = list(dict.fromkeys([*key, *([fresh] if fresh else [])]))
    names = ", ".join(quote(c) for c in columns)
    candidates = (
        f"SELECT {', '.join(f't.{quote(c)}' for c in columns)} FROM {landing} t "
        f"JOIN {VERDICTS} v USING ({ROW_ID}) WHERE v._candidate"
    )
    profile = candidates
    if raw:
        kept = (
            f"SELECT {', '.join(f'r.{quote(c)}' for c in columns)} FROM {raw} r WHERE NOT EXISTS "
            f"(SELECT 1 FROM _audit_candidates c WHERE {_key_match(key, 'c.', 'r.')})"
        )
        profile = f"{kept} UNION ALL SELECT {names} FROM _audit_candidates"
        tx.execute("DROP TABLE IF EXISTS _audit_candidates")
        tx.execute(f"CREATE TEMP TABLE _audit_candidates AS {candidates}")
    all_missing = " AND ".join(f"{quote(c)} IS NULL" for c in key)
    found = tx.query(
        f"WITH profile AS ({profile}) SELECT "
        "(SELECT count(*) FROM profile) AS n, "
        f"(SELECT coalesce(sum(k), 0) FROM (SELECT count(*) AS k FROM profile "
        f"WHERE NOT ({all_missing}) GROUP BY {', '.join(quote(c) for c in key)} "
        "HAVING count(*) > 1) d) AS duplicated"
        + (f", (SELECT max({quote(fresh)}) FROM profile) AS newest" if fresh else "")
    )
    rows, duplicated = int(found["n"].iloc[0]), int(found["duplicated"].iloc[0])
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
            newest = cursors.naive(found["newest"].iloc[0]) if fresh else None
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


__all__ = ["FUTURE_RULE", "AuditMismatch", "audit_in_warehouse", "plan_rules"]
