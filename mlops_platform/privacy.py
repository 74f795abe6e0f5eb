"""Column classification and masking: the generic mechanism (no domain facts, no Dagster).

A domain declares, per raw table, which columns are identifiers, quasi-identifiers or personal
data (`tables.<table>.classification` in its `domain.yaml`, read by
`contracts/classification.py`). This module holds what the platform does
with such a declaration: it masks classified values wherever rows leave the warehouse as
examples (check metadata, incidents, log lines), and it tells the spec loader which
columns a feature function may not read without a stated reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

MASK = "***"


class DataClass(StrEnum):
    """How much a column says about a person (or a thing that leads to one)."""

    IDENTIFIER = "identifier"  # names one person or record on its own (a customer id)
    QUASI_IDENTIFIER = "quasi_identifier"  # leads to one with outside data (a registration)
    PERSONAL = "personal"  # about a person, without naming them (a date of birth)
    NONE = "none"

    @property
    def classified(self) -> bool:
        return self is not DataClass.NONE


#: Strictest first: a column classified differently in two tables takes the strictest class.
STRICTNESS = [DataClass.IDENTIFIER, DataClass.QUASI_IDENTIFIER, DataClass.PERSONAL, DataClass.NONE]


@dataclass(frozen=True)
class Classified:
    """One column's class and why (the reason shows in reviews and the threat model)."""

    data_class: DataClass
    reason: str


def strictest(classes: Iterable[DataClass]) -> DataClass:
    found = list(classes)
    return min(found, key=STRICTNESS.index) if found else DataClass.NONE


def classes_of(declaration: Mapping[str, Mapping[str, Classified]], table: str | None = None):
    """{column: class} of the classified columns of `table`, or of every table when None."""
    if table is not None and table not in declaration:
        raise KeyError(f"no classification declared for table {table!r}")
    tables = [table] if table is not None else list(declaration)
    merged: dict[str, list[DataClass]] = {}
    for name in tables:
        for column, classified in declaration[name].items():
            merged.setdefault(column, []).append(classified.data_class)
    found = {column: strictest(classes) for column, classes in merged.items()}
    return {column: cls for column, cls in found.items() if cls.classified}


def mask_records(records: list[dict], classified: Mapping[str, DataClass]) -> list[dict]:
    return [
        {k: (MASK if k in classified and v is not None else v) for k, v in r.items()}
        for r in records
    ]


#: Expectations whose observation is a fact about the table, never a value from a row.
STRUCTURAL_EXPECTATIONS = {"expect_column_to_exist", "expect_table_row_count_to_be_between"}


def mask_observed(
    expectation: str, column: str, observed: str, classified: Mapping[str, DataClass]
) -> str:
    """An expectation's observed values, masked when its column (or one of a compound key's,
    `a,b`) is classified."""
    if expectation in STRUCTURAL_EXPECTATIONS:
        return observed
    if any(c in classified for c in column.split(",")):
        return MASK if observed else observed
    return mask_text(observed, classified)


def _value_pattern(columns: Iterable[str]) -> re.Pattern | None:
    names = sorted({re.escape(c) for c in columns}, key=len, reverse=True)
    if not names:
        return None
    # `col=X12`, `col: X12`, `"col": "X12"`, `'col': 'X12'`: the name, an
    # optional closing quote, `=` or `:`, then a quoted value or a bare word.
    return re.compile(
        r"(?P<key>\b(?:" + "|".join(names) + r")\b[\"']?\s*[=:]\s*)"
        r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;)}\]]+)"
    )


def mask_text(text: str, classified: Iterable[str]) -> str:
    """Free text (log lines, error messages) with the values of classified columns masked,
    wherever they appear as `column=value` or `column: value` (quoted or not)."""
    pattern = _value_pattern(classified)
    if pattern is None:
        return text
    return pattern.sub(lambda m: m.group("key") + MASK, text)


class MaskingFilter(logging.Filter):
    """Masks classified values in a log record's message (attach to a logger or a handler)."""

    def __init__(self, classified: Iterable[str]) -> None:
        super().__init__()
        self.columns = sorted(set(classified))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, self.columns)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@dataclass(frozen=True)
class ClassifiedUse:
    function: str
    table: str
    column: str
    data_class: DataClass


def classified_uses(
    inputs: Mapping[str, Mapping[str, Sequence[str]]],
    names: Iterable[str],
    declaration: Mapping[str, Mapping[str, Classified]],
) -> list[ClassifiedUse]:
    """Every classified raw column that the named feature functions read, given what each
    declares it reads (`inputs`: {function: {table: columns}})."""
    uses = []
    for name in names:
        for table, columns in inputs[name].items():
            declared = declaration.get(table, {})
            for column in columns:
                found = declared.get(column)
                if found is not None and found.data_class.classified:
                    uses.append(ClassifiedUse(name, table, column, found.data_class))
    return uses
