"""/feedback: ground truth for a served prediction, held to the label table's contract.

The request is the label table's key plus the label, as the spec's domain declares them
(`label`, `feedback` in its `domain.yaml`; see `rules.feedback_rules`): key parts the contract
gives allowed values for (categories or a reference table) are strings, the other key parts
integers, the label a number or null (unknown: the outcome never came). Values a reference
table allows are read from the warehouse off the request path and cached; until they have been
read once, feedback answers 503.
"""

from __future__ import annotations

import logging
import threading
import time

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlops_platform.serving.rules import FeedbackRules

log = logging.getLogger("mlops.serving")


def feedback_model(rules: FeedbackRules, max_request_id_chars: int) -> type[BaseModel]:
    fields: dict = {}
    for column in rules.key:
        if column in rules.categories or column in rules.references:
            fields[column] = (str, Field(max_length=256, description="a known value"))
        else:
            # Bounded to what the log stores (int64), so no value overflows on the way.
            fields[column] = (int, Field(ge=-(2**63), le=2**63 - 1, description="key part"))
    fields[rules.label] = (float | None, Field(description="the outcome; null if unknown"))
    fields["request_id"] = (
        str | None,
        Field(default=None, max_length=max_request_id_chars, description="of the prediction"),
    )
    return create_model(
        "Feedback",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Ground truth for a row of {rules.table}, by its key.",
        **fields,
    )


def feedback_schema(rules: FeedbackRules):
    import pyarrow as pa

    columns = [("ts", pa.timestamp("us"))]
    for column in rules.key:
        text = column in rules.categories or column in rules.references
        columns.append((column, pa.string() if text else pa.int64()))
    columns += [(rules.label, pa.float64()), ("request_id", pa.string())]
    return pa.schema(columns)


class ReferenceValues:
    """Allowed values from reference tables, re-read at most every `max_age` seconds."""

    def __init__(self, warehouse, references: dict[str, tuple[str, str]], max_age: float = 300):
        self.warehouse = warehouse
        self.references = references
        self.max_age = max_age
        self.values: dict[str, frozenset[str]] | None = None if references else {}
        self.error: str | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def stale(self) -> bool:
        return bool(self.references) and time.monotonic() - self._loaded_at > self.max_age

    def refresh(self) -> None:
        """Read the reference tables (blocking; call off the event loop). Never raises."""
        from mlops_platform.warehouse.base import quote

        with self._lock:
            if not self.stale():
                return
            try:
                values = {}
                for column, (table, ref_column) in self.references.items():
                    found = self.warehouse.query(
                        f"SELECT DISTINCT {quote(ref_column)} AS v FROM raw.{quote(table)}"
                    )
                    values[column] = frozenset(str(v) for v in found["v"] if v is not None)
                self.values, self.error = values, None
            except Exception as exc:  # noqa: BLE001 - keep the last values; say why
                self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("could not read feedback reference values: %s", self.error)
            self._loaded_at = time.monotonic()
