"""Markdown tables for check metadata (the Dagster UI renders them)."""

from __future__ import annotations


def markdown_table(rows: list[dict], max_cell: int = 120) -> str:
    """A table with one column per key of the first row; `_none_` when there are no rows."""
    if not rows:
        return "_none_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(row[c]).replace("|", "\\|").replace("\n", " ")[:max_cell] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
