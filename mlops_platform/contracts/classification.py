"""Which raw columns say something about a person: each domain's column classification, read
from its declaration (`tables.<table>.classification` in `domain.yaml`).

Every column of every raw table is declared (a test compares this with the loaded tables), so a
column that appears at the source has to be classified before anyone can claim it is harmless.
What the platform does with the classes (masking, the spec check, hashing in the prediction
log) is generic: `mlops_platform/privacy.py`.
"""

from __future__ import annotations

from mlops_platform.domains import Domain, declared_domains, load_domain
from mlops_platform.privacy import Classified, DataClass, classes_of


def classification_of(domain: Domain) -> dict[str, dict[str, Classified]]:
    """{table: {column: Classified}} as the domain declares it."""
    return {
        table: {
            column: Classified(DataClass(group.data_class), group.reason)
            for group in declared.classification
            for column in group.columns
        }
        for table, declared in domain.tables.items()
    }


def all_classifications() -> dict[str, dict[str, Classified]]:
    """Every declared domain's tables (a table name in two domains takes both columns)."""
    merged: dict[str, dict[str, Classified]] = {}
    for name in declared_domains():
        for table, columns in classification_of(load_domain(name)).items():
            merged.setdefault(table, {}).update(columns)
    return merged


def classified_columns(table: str | None = None, domain: Domain | None = None):
    """{column: class} of the classified columns of raw `table`, or of the whole domain (every
    raw table; a column classified in two tables takes the stricter class) when None. Without a
    domain: across every declared domain (what a masking filter outside any one domain needs).

    Columns of class `none` are left out. An undeclared table raises KeyError."""
    declaration = classification_of(domain) if domain is not None else all_classifications()
    return classes_of(declaration, table)


def __getattr__(name: str):
    # `CLASSIFICATION` is read when asked for: every declared domain's tables.
    if name == "CLASSIFICATION":
        return all_classifications()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
