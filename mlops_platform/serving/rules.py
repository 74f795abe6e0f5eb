"""What serving accepts, read from the domain's declarations (the raw tables' contracts).

Serving names no domain column itself:
- a model feature named like a raw column that a contract bounds carries that range (the widest
  one if several tables bound a column of that name), so a request is held to the same limits
  as the data the model was trained on;
- feedback is the label table's row key plus the label: the contract whose rules cover the
  spec's target column gives the key, the ranges, the categories and the reference tables
  (e.g. known carriers) feedback must satisfy.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from mlops_platform.specs import ModelSpec

#: Columns that together name a calendar date; when a key holds all three it must be a real day.
DATE_PARTS = ("year", "month", "day")


@dataclass(frozen=True)
class FeedbackRules:
    table: str
    key: tuple[str, ...]
    label: str
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]
    #: {column: (raw table, column)} whose values are read from the warehouse
    references: dict[str, tuple[str, str]] = field(default_factory=dict)


def _bounds(low, high) -> tuple[float, float]:
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def feature_ranges(spec: ModelSpec) -> dict[str, tuple[float, float]]:
    """{numeric feature: (low, high)} for the features a contract bounds."""
    from mlops_platform.contracts.rules import CONTRACTS

    ranges: dict[str, tuple[float, float]] = {}
    for contract in CONTRACTS.values():
        for column, (low, high) in contract.ranges.items():
            if column not in spec.features.numeric:
                continue
            low, high = _bounds(low, high)
            if column in ranges:  # the widest: never refuse what some table allows
                low, high = min(low, ranges[column][0]), max(high, ranges[column][1])
            ranges[column] = (low, high)
    return ranges


def feedback_rules(spec: ModelSpec) -> FeedbackRules:
    """The rules of the table the spec's label comes from."""
    from mlops_platform.contracts.rules import CONTRACTS

    target = spec.target.column
    for contract in CONTRACTS.values():
        if target in contract.ranges or target in contract.required_columns:
            return FeedbackRules(
                table=contract.table,
                key=tuple(contract.key),
                label=target,
                ranges={c: _bounds(*r) for c, r in contract.ranges.items()},
                categories={c: frozenset(v) for c, v in contract.categories.items()},
                references=dict(contract.references),
            )
    raise ValueError(f"no contract declares the label column {target!r} of {spec.name}")


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
    if all(part in record for part in DATE_PARTS):
        try:
            day = dt.date(*(int(record[part]) for part in DATE_PARTS))
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(f"{'-'.join(DATE_PARTS)}: not a real date ({exc})")
        else:
            # A label is known only after the event: feedback about a future day is wrong.
            if day > today:
                problems.append(f"{'-'.join(DATE_PARTS)}: {day} is in the future")
    return problems
