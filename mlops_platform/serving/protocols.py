"""Request parsing for the MLflow scoring protocol and the Open Inference Protocol.

Pure functions from a decoded payload to columns (`{name: [values]}`) and a row count; every
error is a `ProtocolError` whose message says what was wrong and where.
"""

from __future__ import annotations

import csv
import io

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class ProtocolError(ValueError):
    pass


def _records_to_columns(records: list, where: str) -> tuple[dict[str, list], int]:
    if not isinstance(records, list) or not records:
        raise ProtocolError(f"{where} must be a non-empty list of records")
    columns: dict[str, list] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ProtocolError(f"{where}[{i}] must be an object of column: value")
        for name in record:
            columns.setdefault(name, [None] * i)
        for name, values in columns.items():
            values.append(record.get(name))
    return columns, len(records)


def _dict_of_columns(data: dict, where: str) -> tuple[dict[str, list], int]:
    lengths = {len(v) if isinstance(v, list) else 1 for v in data.values()}
    if len(lengths) != 1:
        raise ProtocolError(f"{where}: all columns must have the same number of values")
    columns = {k: v if isinstance(v, list) else [v] for k, v in data.items()}
    return columns, lengths.pop()


def parse_mlflow_json(payload) -> tuple[dict[str, list], int]:
    """`dataframe_split`, `dataframe_records`, `instances` or `inputs` (exactly one)."""
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"the JSON body must be an object with one of the keys {', '.join(MLFLOW_FORMATS)}"
        )
    found = [key for key in MLFLOW_FORMATS if key in payload]
    unknown = set(payload) - {*MLFLOW_FORMATS, "params"}
    if len(found) != 1 or unknown:
        raise ProtocolError(
            "The input must be a JSON dictionary with exactly one of the input fields "
            f"{{{', '.join(repr(k) for k in MLFLOW_FORMATS)}}}. Received dictionary with input "
            f"fields: {sorted(payload)}."
        )
    key = found[0]
    data = payload[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or "columns" not in data or "data" not in data:
            raise ProtocolError("dataframe_split needs 'columns' and 'data'")
        names, rows = data["columns"], data["data"]
        if not isinstance(rows, list) or not rows:
            raise ProtocolError("dataframe_split.data must be a non-empty list of rows")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise ProtocolError(
                    f"dataframe_split.data[{i}] must have {len(names)} values (one per column)"
                )
        return {name: [row[j] for row in rows] for j, name in enumerate(names)}, len(rows)
    if key == "dataframe_records":
        return _records_to_columns(data, key)
    if isinstance(data, dict):
        return _dict_of_columns(data, key)
    return _records_to_columns(data, key)


def parse_csv(body: bytes) -> tuple[dict[str, list], int]:
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8")))
        header = next(reader)
    except (UnicodeDecodeError, StopIteration) as exc:
        raise ProtocolError(f"could not read CSV: {exc}") from None
    rows = [row for row in reader if row]
    if not rows:
        raise ProtocolError("CSV has a header but no rows")
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ProtocolError(f"CSV line {i} has {len(row)} fields, expected {len(header)}")
    return {name: [row[j] or None for row in rows] for j, name in enumerate(header)}, len(rows)


def parse_oip(payload) -> tuple[dict[str, list], int]:
    """Open Inference Protocol tabular request: one input tensor per column."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise ProtocolError("the body must be an object with an 'inputs' list")
    columns, rows = {}, None
    for i, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise ProtocolError(f"inputs[{i}] needs 'name', 'shape', 'datatype' and 'data'")
        data = tensor["data"]
        if not isinstance(data, list):
            data = [data]
        shape = tensor.get("shape") or [len(data)]
        if shape[0] != len(data):
            raise ProtocolError(
                f"input '{tensor['name']}' has shape {shape} but {len(data)} values"
            )
        if rows is not None and len(data) != rows:
            raise ProtocolError(f"input '{tensor['name']}' has {len(data)} rows, others {rows}")
        rows = len(data)
        columns[tensor["name"]] = data
    if not rows:
        raise ProtocolError("no input rows")
    return columns, rows
