"""What serving accepts, read from the domain's declarations (the raw tables' contracts).

Serving names no domain column itself:
- a model feature named like a raw column that a contract bounds carries that range (the widest
  one if several tables bound a column of that name), so a request is held to the same limits
  as the data the model was trained on;
- feedback is the label table's row key plus the label, as the domain declares them
  (`label.table`, `feedback`): that table's contract gives the ranges, the categories and the
  reference tables (values read from another raw table) feedback must satisfy.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from mlops_platform.specs import ModelSpec


@dataclass(frozen=True)
class FeedbackRules:
    table: str
    key: tuple[str, ...]
    label: str
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]
    #: {column: (raw table, column)} whose values are read from the warehouse
    references: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: key columns that together spell a calendar day (it must be real, and not in the future)
    date_parts: tuple[str, ...] = ()


def _bounds(low, high) -> tuple[float, float]:
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def feature_ranges(spec: ModelSpec) -> dict[str, tuple[float, float]]:
    """{numeric feature: (low, high)} for the features a contract of its domain bounds."""
    from mlops_platform.contracts.rules import contracts_of
    from mlops_platform.domains import domain_for

    ranges: dict[str, tuple[float, float]] = {}
    for contract in contracts_of(domain_for(spec)).values():
        for column, (low, high) in contract.ranges.items():
            if column not in spec.features.numeric:
                continue
            low, high = _bounds(low, high)
            if column in ranges:  # the widest: never refuse what some table allows
                low, high = min(low, ranges[column][0]), max(high, ranges[column][1])
            ranges[column] = (low, high)
    return ranges


def feedback_rules(spec: ModelSpec) -> FeedbackRules:
    """The rules of the table the spec's label comes from (the domain's declaration)."""
    from mlops_platform.contracts.rules import contract_of
    from mlops_platform.domains import domain_for

    domain = domain_for(spec)
    contract = contract_of(domain, domain.label.table)
    return FeedbackRules(
        table=contract.table,
        key=tuple(domain.feedback_key),
        label=spec.target.column,
        ranges={c: _bounds(*r) for c, r in contract.ranges.items()},
        categories={c: frozenset(v) for c, v in contract.categories.items()},
        references=dict(contract.references),
        date_parts=tuple(domain.feedback.date_parts or ()),
    )


def feedback_problems(
    record: dict, rules: FeedbackRules, known: dict[str, frozenset[str]], today: dt.date
) -> list[str]:
    """What is wrong with one feedback record (empty if nothing), column by column."""
    problems = []
    for column, (low, high) in rules.ranges.items():
        value = record.get(column)
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            problems.append(f"{column}: {value!r} is outside [{low:g}, {high:g}]")
    allowed = {**rules.categories, **known}
    for column, values in allowed.items():
        value = record.get(column)
        if value is not None and value not in values:
            problems.append(f"{column}: {value!r} is not a known value")
    parts = rules.date_parts
    if parts and all(part in record for part in parts):
        try:
            day = dt.date(*(int(record[part]) for part in parts))
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(f"{'-'.join(parts)}: not a real date ({exc})")
        else:
            # A label is known only after the event: feedback about a future day is wrong.
            if day > today:
                problems.append(f"{'-'.join(parts)}: {day} is in the future")
    return problems
