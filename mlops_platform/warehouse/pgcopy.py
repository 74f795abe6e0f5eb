"""Bulk-load a DataFrame into PostgreSQL with COPY (psycopg 3 or psycopg2)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

NULL = "\\N"


def copy_frame(dbapi_connection, target: str, frame: pd.DataFrame) -> None:
    """COPY `frame` into `target` (an already-quoted, possibly schema-qualified table name)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep=NULL)
    columns = _column_list(frame.columns)
    statement = f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')"
    _copy(dbapi_connection, statement, buffer)


def copy_arrow(dbapi_connection, target: str, table) -> None:
    """COPY an Arrow table into `target` (columns by name): written as CSV by Arrow, without a
    Python object per cell. NULL is the unquoted empty field (COPY's CSV default) and Arrow
    quotes every non-null string, so an empty string stays an empty string."""
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    pacsv.write_csv(table, buffer, options)
    columns = _column_list(table.column_names)
    statement = f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv)"
    _copy(dbapi_connection, statement, buffer)


def _column_list(names) -> str:
    return ", ".join('"' + str(c).replace('"', '""') + '"' for c in names)


def _copy(dbapi_connection, statement: str, buffer: io.StringIO | io.BytesIO) -> None:
    """Run `statement` (COPY ... FROM STDIN) with `buffer`'s content, on psycopg 3 or psycopg2."""
    cursor = dbapi_connection.cursor()
    if hasattr(cursor, "copy_expert"):  # psycopg2
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)
    else:  # psycopg 3
        with cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())
