"""Request parsing for the MLflow scoring protocol and the Open Inference Protocol.

Pure functions from a body or decoded payload to columns (`{name: [values]}`) and a row count.
Only the columns the model needs (`wanted`) are built, in one pass over the rows, so the work
and memory are linear in the body whatever keys a client invents. Every error is a
`ProtocolError` (400) or `TooManyRows` (413) whose message says what was wrong and where.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence

import orjson

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: orjson's own nesting limit, and the one of the standard parser (the fallback for NaN and
#: Infinity tokens and integers over 64 bits), which recurses in C.
MAX_DEPTH = 1024
FALLBACK_DEPTH = 256


class ProtocolError(ValueError):
    pass


class TooManyRows(ProtocolError):
    """More rows than one request may carry (answered 413)."""


_LIST = {list}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _depth(body: bytes) -> int:
    """Deepest bracket nesting outside strings, in C-speed passes (regex, translate, numpy)."""
    import numpy as np

    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _bounded_int(text: str) -> int | float:
    if len(text) <= 18:
        return int(text)
    value = float(text)  # what the model would see anyway
    if value in (float("inf"), float("-inf")):
        raise ProtocolError(f"integer {text[:20]}... is beyond the float range")
    return value


def loads(body: bytes):
    """orjson, falling back to the standard parser, which (like MLflow's server) accepts the
    NaN/Infinity tokens Python clients emit. Integers beyond the float range and nesting deeper
    than `MAX_DEPTH` are errors, never a crash."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise ProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    # The standard parser recurses: refuse deep nesting before it raises RecursionError
    # (after which CPython 3.11 can fail a later compile() in the same thread).
    if _depth(body) > FALLBACK_DEPTH:
        raise ProtocolError(f"JSON nested deeper than {FALLBACK_DEPTH} levels")
    try:
        return json.loads(body, parse_int=_bounded_int)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"invalid JSON: {exc}") from None


def _check_rows(rows: int, max_rows: int, where: str) -> None:
    if rows > max_rows:
        raise TooManyRows(f"{where} has {rows} rows; at most {max_rows} per request")


def _records_to_columns(
    records, where: str, wanted: Sequence[str], max_rows: int
) -> tuple[dict[str, list], int]:
    if not isinstance(records, list) or not records:
        raise ProtocolError(f"{where} must be a non-empty list of records")
    _check_rows(len(records), max_rows, where)
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise ProtocolError(f"{where}[{i}] must be an object of column: value")
    first = records[0]
    present = [name for name in wanted if name in first]
    if len(present) < len(wanted) and len(records) > 1:
        # A column no record has is missing (an error later); one some records lack is null.
        absent = {name for name in wanted if name not in first}
        for record in records:
            absent.difference_update([name for name in absent if name in record])
            if not absent:
                break
        present = [name for name in wanted if name not in absent]
    # Only the model's columns: a client's extra keys cost nothing.
    if len(records) == 1:
        return {name: [first[name]] for name in present}, 1
    columns = {name: [record.get(name) for record in records] for name in present}
    return columns, len(records)


def _dict_of_columns(
    data: dict, where: str, wanted: Sequence[str], max_rows: int
) -> tuple[dict[str, list], int]:
    if not data:
        raise ProtocolError(f"{where} must name at least one column")
    lengths = {len(v) if isinstance(v, list) else 1 for v in data.values()}
    if len(lengths) != 1:
        raise ProtocolError(f"{where}: all columns must have the same number of values")
    rows = lengths.pop()
    if rows == 0:
        raise ProtocolError(f"{where}: no rows")
    _check_rows(rows, max_rows, where)
    columns = {k: v if isinstance(v, list) else [v] for k, v in data.items() if k in set(wanted)}
    return columns, rows


def _split_to_columns(data, wanted: Sequence[str], max_rows: int) -> tuple[dict[str, list], int]:
    where = "dataframe_split"
    if not isinstance(data, dict) or "columns" not in data or "data" not in data:
        raise ProtocolError(f"{where} needs 'columns' and 'data'")
    names, rows = data["columns"], data["data"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"{where}.columns must be a list of column names (strings)")
    if not isinstance(rows, list) or not rows:
        raise ProtocolError(f"{where}.data must be a non-empty list of rows")
    _check_rows(len(rows), max_rows, where)
    width = len(names)
    if set(map(type, rows)) != _LIST or set(map(len, rows)) != {width}:  # in C; then find it
        for i, row in enumerate(rows):
            if type(row) is not list or len(row) != width:
                raise ProtocolError(f"{where}.data[{i}] must be a list of {width} values")
    position = {}
    for j, name in enumerate(names):
        position.setdefault(name, j)
    # Transposed in C (zip), then only the model's columns kept (as tuples: `normalize` makes
    # its own lists or arrays): a third of the time of one Python list per wanted column on
    # 1,000-row requests; linear in the body either way.
    transposed = list(zip(*rows, strict=True))
    columns = {name: transposed[position[name]] for name in wanted if name in position}
    return columns, len(rows)


def parse_mlflow_json(payload, wanted: Sequence[str], max_rows: int) -> tuple[dict[str, list], int]:
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
            f"fields: {sorted(payload)[:20]}."
        )
    if "params" in payload and not isinstance(payload["params"], dict):
        raise ProtocolError("params must be an object")
    key = found[0]
    data = payload[key]
    if key == "dataframe_split":
        return _split_to_columns(data, wanted, max_rows)
    if key != "dataframe_records" and isinstance(data, dict):
        return _dict_of_columns(data, key, wanted, max_rows)
    return _records_to_columns(data, key, wanted, max_rows)


def parse_csv(body: bytes, wanted: Sequence[str], max_rows: int) -> tuple[dict[str, list], int]:
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8")))
        header = next(reader)
        rows = []
        for row in reader:
            if row:
                rows.append(row)
                _check_rows(len(rows), max_rows, "CSV")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"CSV is not UTF-8: {exc}") from None
    except StopIteration:
        raise ProtocolError("CSV is empty: no header") from None
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(), a NUL byte
        raise ProtocolError(f"could not read CSV line {reader.line_num}: {exc}") from None
    if not rows:
        raise ProtocolError("CSV has a header but no rows")
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ProtocolError(f"CSV line {i} has {len(row)} fields, expected {len(header)}")
    position = {}
    for j, name in enumerate(header):
        position.setdefault(name, j)
    columns = {
        name: [row[position[name]] or None for row in rows] for name in wanted if name in position
    }
    return columns, len(rows)


def _tensor_rows(tensor: dict, where: str) -> list:
    name, data, shape = tensor["name"], tensor["data"], tensor.get("shape")
    if not isinstance(name, str):
        raise ProtocolError(f"{where}.name must be a string")
    if "datatype" in tensor and not isinstance(tensor["datatype"], str):
        raise ProtocolError(f"{where}.datatype must be a string")
    if "parameters" in tensor and not isinstance(tensor["parameters"], dict):
        raise ProtocolError(f"{where}.parameters must be an object")
    if not isinstance(data, list):
        data = [data]
    if shape is None:
        return data
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise ProtocolError(f"{where}.shape must be a list of non-negative integers")
    if shape[0] != len(data) or any(d != 1 for d in shape[1:]):
        raise ProtocolError(f"input '{name}' has shape {shape[:8]} but {len(data)} values")
    return data


def parse_oip(payload, wanted: Sequence[str], max_rows: int) -> tuple[dict[str, list], int]:
    """Open Inference Protocol tabular request: one input tensor per column."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise ProtocolError("the body must be an object with an 'inputs' list")
    if "id" in payload and not isinstance(payload["id"], str):
        raise ProtocolError("'id' must be a string")
    if "parameters" in payload and not isinstance(payload["parameters"], dict):
        raise ProtocolError("'parameters' must be an object")
    if "outputs" in payload and not isinstance(payload["outputs"], list):
        raise ProtocolError("'outputs' must be a list")
    wanted_set = set(wanted)
    columns, rows = {}, None
    for i, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise ProtocolError(f"inputs[{i}] needs 'name', 'shape', 'datatype' and 'data'")
        data = _tensor_rows(tensor, f"inputs[{i}]")
        if rows is not None and len(data) != rows:
            raise ProtocolError(f"input '{tensor['name']}' has {len(data)} rows, others {rows}")
        rows = len(data)
        _check_rows(rows, max_rows, f"input '{tensor['name']}'")
        if tensor["name"] in wanted_set:
            columns[tensor["name"]] = data
    if not rows:
        raise ProtocolError("no input rows")
    return columns, rows
