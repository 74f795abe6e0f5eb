"""A contract's row rules as SQL predicates, compiled from the same Great Expectations
expectations the pandas path runs (pure: no warehouse, no Dagster).

Each predicate is true for a row the expectation counts as unexpected, with GE's pandas
semantics: missing values (NULL, and NaN in a floating column) are ignored by every rule but
`expect_column_values_to_not_be_null`, bounds are inclusive, and a compound key ignores rows
whose key values are all missing. A rule, value or column type without an exact SQL form here
makes `compile_batch_rules` return None: that batch is then audited by GE alone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A window column the audit query provides: how many candidate rows share the row's key.
PER_KEY = "_audit_per_key"

_FLOATING = {"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"}
_INTEGRAL = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
_TEXT = {"VARCHAR", "TEXT", "STRING"}


@dataclass(frozen=True)
class SqlRule:
    """One expectation: its reason text (`type(column)`, as the GE path writes it) and the SQL
    predicate of its unexpected rows."""

    expectation: str
    column: str
    unexpected: str

    @property
    def reason(self) -> str:
        return f"{self.expectation}({self.column})"


def value_kind(sql_type: str) -> str:
    """number | text | time | other, from a warehouse column type."""
    upper = sql_type.upper()
    if upper in _FLOATING or upper in _INTEGRAL or upper.startswith(("DECIMAL", "NUMERIC")):
        return "number"
    if upper in _TEXT:
        return "text"
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return "time"
    return "other"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value, kind: str) -> str | None:
    """A value as an SQL literal of a column of `kind`, or None when it has no exact one."""
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return repr(value)
    if kind == "text" and isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def missing(column: str, sql_type: str, alias: str = "") -> str:
    """SQL for "this cell is missing" as pandas sees it (NaN is missing in a float column)."""
    ref = f"{alias}{quote(column)}"
    if sql_type.upper() in _FLOATING:
        return f"({ref} IS NULL OR isnan({ref}))"
    return f"{ref} IS NULL"


def compile_batch_rules(
    expectations: list, types: dict[str, str], alias: str = ""
) -> list[SqlRule] | None:
    """The batch expectations (`validate.batch_expectations`) as SQL, in their order; None if
    any has no exact SQL form. `types`: each landed column's warehouse type."""
    rules = []
    for expectation in expectations:
        config = expectation.configuration
        kwargs = config.kwargs
        rule = _compile(config.type, kwargs, types, alias)
        if rule is None:
            return None
        rules.append(rule)
    return rules


def _compile(kind: str, kwargs: dict, types: dict[str, str], alias: str) -> SqlRule | None:
    if kind == "expect_compound_columns_to_be_unique":
        columns = list(kwargs["column_list"])
        if any(c not in types for c in columns) or kwargs.get("ignore_row_if") not in (
            None,
            "all_values_are_missing",
        ):
            return None
        all_missing = " AND ".join(missing(c, types[c], alias) for c in columns)
        return SqlRule(kind, ",".join(columns), f"{PER_KEY} > 1 AND NOT ({all_missing})")
    column = kwargs.get("column")
    if column not in types or kwargs.get("mostly", 1) != 1:
        return None
    sql_type = types[column]
    absent = missing(column, sql_type, alias)
    ref = f"{alias}{quote(column)}"
    if kind == "expect_column_values_to_not_be_null":
        return SqlRule(kind, column, absent)
    if kind == "expect_column_values_to_be_unique":
        return SqlRule(kind, column, f"{PER_KEY} > 1 AND NOT {absent}")
    value = value_kind(sql_type)
    if kind == "expect_column_values_to_be_between":
        if value != "number" or kwargs.get("strict_min") or kwargs.get("strict_max"):
            return None
        bounds = []
        for key, op in (("min_value", ">="), ("max_value", "<=")):
            if kwargs.get(key) is not None:
                bound = literal(kwargs[key], value)
                if bound is None:
                    return None
                bounds.append(f"{ref} {op} {bound}")
        if not bounds:
            return None
        return SqlRule(kind, column, f"NOT {absent} AND NOT ({' AND '.join(bounds)})")
    if kind == "expect_column_values_to_be_in_set":
        values = [literal(v, value) for v in kwargs.get("value_set") or []]
        if any(v is None for v in values):
            return None
        inside = f"{ref} IN ({', '.join(values)})" if values else "FALSE"
        return SqlRule(kind, column, f"NOT {absent} AND NOT ({inside})")
    return None
