"""What each raw table promises: its contract, as plain data (no Great Expectations, no Dagster).

Row rules (non-null, ranges, categories, key uniqueness within the batch, cell types, required
columns present at the source, no time beyond the source's clock, no version older than the
stored one) are checked on every landed batch, so offending rows are quarantined one by one.
Table rules (key uniqueness, row count, freshness against the replay clock) are checked on the
table as it would be after the publish.

The contracts are declared in each domain's `domain.yaml` (`tables.<table>.contract`);
`contracts_of(domain)` reads them into `TableContract`s. `CONTRACTS` is every table of the
enabled domains (raw table names are unique across them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from mlops_platform.domains import Domain, enabled_domains


@dataclass(frozen=True)
class TableContract:
    table: str
    key: list[str]
    required_columns: list[str]
    not_null: list[str]
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    #: columns whose allowed values come from another raw table: {column: (table, column)}
    references: dict[str, tuple[str, str]] = field(default_factory=dict)
    min_rows: int = 1
    #: (column, maximum age relative to the replay clock) or None
    freshness: tuple[str, dt.timedelta] | None = None
    #: the column that orders a key's versions (newest wins; None: the latest load wins)
    version: str | None = None
    #: time columns that may not be later than the source's clock (or now) + `future_tolerance`
    not_after_clock: list[str] = field(default_factory=list)
    future_tolerance: dt.timedelta = dt.timedelta(hours=1)
    #: a row deleted at the source: "reflect" (delete it from raw, keep it in quarantine with
    #: status `deleted`), "flag" (keep it in raw, quarantine a pending entry and fail the
    #: contract), or "ignore" (the source cannot list its keys, e.g. an HTTP feed)
    on_source_delete: Literal["reflect", "flag", "ignore"] = "ignore"
    #: the column the table's incremental cursor follows, and how far before it a read starts
    cursor: str | None = None
    lookback: dt.timedelta = dt.timedelta(0)
    #: the domain that declares the table
    domain: str = ""


def contract_of(domain: Domain, table: str) -> TableContract:
    """One raw table's contract, from its domain's declaration."""
    declared = domain.tables[table]
    rules = declared.contract
    return TableContract(
        table=table,
        key=list(declared.primary_key),
        required_columns=list(rules.required_columns),
        not_null=list(rules.not_null),
        ranges=dict(rules.ranges),
        categories={c: list(v) for c, v in rules.categories.items()},
        references={c: tuple(t.split(".")) for c, t in rules.references.items()},
        min_rows=rules.min_rows,
        freshness=(rules.freshness.column, rules.freshness.max_age) if rules.freshness else None,
        version=rules.version,
        not_after_clock=list(rules.not_after_clock),
        future_tolerance=rules.future_tolerance,
        on_source_delete=rules.on_source_delete,
        cursor=declared.cursor,
        lookback=declared.lookback,
        domain=domain.name,
    )


def contracts_of(domain: Domain) -> dict[str, TableContract]:
    return {table: contract_of(domain, table) for table in domain.tables}


def enabled_contracts() -> dict[str, TableContract]:
    """Every raw table of the enabled domains; a table name declared by two is an error."""
    found: dict[str, TableContract] = {}
    for domain in enabled_domains():
        for table, contract in contracts_of(domain).items():
            if table in found:
                raise ValueError(
                    f"raw table {table!r} is declared by domains {found[table].domain!r} and "
                    f"{domain.name!r}: raw table names must be unique"
                )
            found[table] = contract
    return found


def __getattr__(name: str):
    # `CONTRACTS` is read when asked for (the enabled domains come from the environment).
    if name == "CONTRACTS":
        return enabled_contracts()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
