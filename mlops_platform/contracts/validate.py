"""Run a table's contract with Great Expectations (in-process, ephemeral context).

`validate_contract` takes plain DataFrames and returns a `ContractReport`: one outcome per
expectation, and the offending batch rows with the reasons they failed. It reads and writes
nothing, so it is tested directly on small frames.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from mlops_platform.contracts.rules import TableContract

REASON_COLUMN = "_quarantine_reason"


@dataclass(frozen=True)
class ExpectationOutcome:
    scope: str  # "batch" (new rows) or "table" (the whole raw table)
    expectation: str
    column: str
    success: bool
    unexpected_count: int
    observed: str


@dataclass
class ContractReport:
    table: str
    batch_rows: int
    table_rows: int
    outcomes: list[ExpectationOutcome]
    bad_rows: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def utc_times(series: pd.Series) -> pd.Series:
    """A column of times as tz-aware UTC. A column that already holds times is converted as is:
    `pd.to_datetime` would first box a sample of it into Timestamps to decide on caching (a
    tenth of the audit's time in a day's increment profile)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC")
    return pd.to_datetime(series, utc=True)


def _naive_utc(series: pd.Series) -> pd.Series:
    return utc_times(series).dt.tz_localize(None)


def batch_expectations(contract: TableContract, columns: set[str], references: dict) -> list:
    import great_expectations as gx

    exp = gx.expectations
    found = []
    for column in contract.not_null:
        if column in columns:
            found.append(exp.ExpectColumnValuesToNotBeNull(column=column))
    for column, (low, high) in contract.ranges.items():
        if column in columns:
            found.append(
                exp.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
            )
    allowed = {**contract.categories, **references}
    for column, values in allowed.items():
        if column in columns:
            found.append(exp.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)))
    if set(contract.key) <= columns:
        found.append(unique_key_expectation(contract.key))
    return found


def unique_key_expectation(key: list[str]):
    import great_expectations as gx

    if len(key) == 1:
        return gx.expectations.ExpectColumnValuesToBeUnique(column=key[0])
    return gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(key))


def table_expectations(contract: TableContract, now: dt.datetime | None) -> list:
    import great_expectations as gx

    exp = gx.expectations
    found = [
        exp.ExpectTableRowCountToBeBetween(min_value=contract.min_rows),
        unique_key_expectation(contract.key),
    ]
    if contract.freshness and now is not None:
        column, max_age = contract.freshness
        found.append(exp.ExpectColumnMaxToBeBetween(column=column, min_value=now - max_age))
    return found


@functools.cache
def _context():
    """One ephemeral Great Expectations context per process, with the pandas batch definitions
    the suites run on. Building a context and its data source, asset and batch definition
    serialises the project config to YAML at each step (about a fifth of a day's audit, the
    increment's profile); the batch itself is handed over at each run (`batch_parameters`), so
    nothing of one validation is kept for the next."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GE fingerprints every pandas batch below its size threshold (an md5 over a hash of every
    # cell: a third of the suites' time on the benchmark's year, `make bench-ingest` profile) and
    # only files it in the result's batch markers, which nothing here reads; above the
    # threshold GE itself skips it. A threshold of 0 skips it always.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context, context.data_sources.add_pandas("contracts"), {}


#: Validations share the context: one at a time.
_CONTEXT_LOCK = threading.Lock()


def _run_suite(name: str, frame: pd.DataFrame, expectations: list, result_format: str) -> list:
    import great_expectations as gx

    with _CONTEXT_LOCK:
        _, source, definitions = _context()
        if name not in definitions:
            definitions[name] = source.add_dataframe_asset(
                f"{name}_asset"
            ).add_batch_definition_whole_dataframe(f"{name}_batch")
        batch = definitions[name].get_batch(batch_parameters={"dataframe": frame})
        # The suite is validated on the batch directly: a ValidationDefinition would also store
        # the suite, itself and its whole result (every unexpected index, serialised to JSON) in
        # the context's stores, which this ephemeral context never reads back.
        suite = gx.ExpectationSuite(name=f"{name}_suite", expectations=list(expectations))
        with _configurations_built_once(), _metric_ids_without_conversion():
            result = batch.validate(suite, result_format={"result_format": result_format})
    return list(result.results)


@contextlib.contextmanager
def _configurations_built_once() -> Iterator[None]:
    """For one validation, each expectation builds its `configuration` once.

    GE's `Expectation.configuration` is a property that serialises the expectation (pydantic
    `.dict()`, value sets copied) into a new `ExpectationConfiguration` at every read, and
    planning a suite reads it ~10 times per metric of each expectation: ~2,200 builds for the
    running example's largest suite, 45% of its validation (cProfile of a day's increment).
    Nothing changes an expectation while it is validated, so the first build is reused for the
    rest of the call.
    Held under `_CONTEXT_LOCK` (validations never overlap); the cache keeps each expectation
    alive, so an id cannot be reused by another object while it lasts."""
    from great_expectations.expectations.expectation import Expectation

    original = Expectation.__dict__["configuration"]
    built: dict[int, tuple[object, object]] = {}

    def configuration(self):
        found = built.get(id(self))
        if found is None or found[0] is not self:
            found = built[id(self)] = (self, original.fget(self))
        return found[1]

    Expectation.configuration = property(configuration, doc=original.__doc__)
    try:
        yield
    finally:
        Expectation.configuration = original


@contextlib.contextmanager
def _metric_ids_without_conversion() -> Iterator[None]:
    """For one validation, a metric's id is hashed from its arguments as they are when they
    are plain JSON.

    GE names each metric it plans by an md5 over its arguments as JSON (`IDDict.to_id`), after
    converting them with `convert_to_json_serializable`, a Python walk over every value: the
    value sets of the reference columns (every allowed code) walked again for each
    metric; ~20% of a day's Great Expectations confirmation (timed over 6 days, 8,000 ids).
    Arguments that `json.dumps` takes as they are (strings, numbers, lists, dicts) get the same
    kind of id without the walk; anything else (sets, NumPy values, times) goes the usual way.
    The ids are only keys within this validation, and equal arguments still get equal ids,
    different ones different ids. Held under `_CONTEXT_LOCK`, like the patch above."""
    import hashlib
    import json

    from great_expectations.core.id_dict import IDDict

    original = IDDict.__dict__["to_id"]

    def to_id(self, id_keys=None, id_ignore_keys=None):
        keys = set(self.keys() if id_keys is None else id_keys) - set(
            self._id_ignore_keys if id_ignore_keys is None else id_ignore_keys
        )
        if len(keys) < 2:
            return original(self, id_keys, id_ignore_keys)
        try:
            text = json.dumps({k: self[k] for k in keys}, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            return original(self, id_keys, id_ignore_keys)
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    IDDict.to_id = to_id
    try:
        yield
    finally:
        IDDict.to_id = original


def _columns_of(expectations: list) -> list[str]:
    """The columns a list of expectations reads."""
    found: dict[str, None] = {}
    for expectation in expectations:
        kwargs = expectation.configuration.kwargs
        for column in [kwargs.get("column"), *(kwargs.get("column_list") or [])]:
            if column:
                found[str(column)] = None
    return list(found)


def _run_two_pass(name: str, frame: pd.DataFrame, expectations: list, result_format: str) -> list:
    """Every expectation judged first for pass/fail only, then the failed ones again for their
    details (`result_format`: counts, offending values, row indexes).

    The same Great Expectations suite either way; the first pass skips what only a failure
    needs, and GE's pandas engine copies the frame it is given for each metric, so it gets only
    the columns the expectations read. On the benchmark's year of events this takes the batch
    validation from 11.8 s to 2.2 s of CPU (`make bench-ingest` profile); a passing batch, the
    common case, never needs the second pass."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    columns = [c for c in _columns_of(expectations) if c in frame.columns]
    narrow = frame[columns] if columns else frame
    first = _first_pass(name, frame, narrow, expectations)
    failed = [r for r in first if not r.success or _raised(r)]
    if not failed:
        return first
    configs: list[ExpectationConfiguration] = [r.expectation_config for r in failed]
    retry = [config.to_domain_obj() for config in configs]
    for expectation in retry:
        expectation.id = None  # a copy, not the first suite's member
    again = _run_suite(f"{name}_failed", narrow, retry, result_format)
    retried = {id(r) for r in failed}
    return [r for r in first if id(r) not in retried] + again


#: From this many rows the first pass runs each column's expectations on that column alone.
SPLIT_ROWS = 100_000


def _first_pass(name: str, frame: pd.DataFrame, narrow: pd.DataFrame, expectations: list) -> list:
    """The pass/fail pass. On a large batch each column's expectations (a compound key's
    together) are validated on their own columns: GE's pandas engine takes the rows of the
    whole frame it is given for every column rule (its null filter), so on the benchmark's
    year each rule copied every column the suite reads. Small batches keep one suite (a suite
    costs a few milliseconds however small its frame)."""
    if len(frame) < SPLIT_ROWS:
        return _run_suite(name, narrow, expectations, "BOOLEAN_ONLY")
    groups: dict[tuple[str, ...], list] = {}
    for expectation in expectations:
        groups.setdefault(tuple(_columns_of([expectation])), []).append(expectation)
    results = []
    for columns, group in groups.items():
        present = bool(columns) and all(c in frame.columns for c in columns)
        part = frame[list(columns)] if present else narrow
        results += _run_suite(f"{name}_part", part, group, "BOOLEAN_ONLY")
    return results


def _raised(result) -> bool:
    return bool(result.exception_info and result.exception_info.get("raised_exception"))


def _describe(result) -> tuple[str, str, int, str, list]:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "*"
    details = result.result or {}
    indexes = list(details.get("unexpected_index_list") or [])
    if "observed_value" in details:
        observed = str(details["observed_value"])
    else:
        observed = ", ".join(str(v) for v in (details.get("partial_unexpected_list") or [])[:5])
    unexpected = int(details.get("unexpected_count") or 0)
    if result.exception_info and result.exception_info.get("raised_exception"):
        raise RuntimeError(
            f"expectation {config.type} on {column} could not run: "
            f"{result.exception_info.get('exception_message')}"
        )
    return config.type, column, unexpected, observed, indexes


def validate_contract(
    contract: TableContract,
    batch: pd.DataFrame,
    table_profile: pd.DataFrame,
    references: dict[str, list] | None = None,
    now: dt.datetime | None = None,
) -> ContractReport:
    """Validate a new batch (row rules) and the whole table's profile (table rules).

    `table_profile` holds at least the key columns and the freshness column of every row of the
    raw table. Missing required columns fail the schema expectation; they never raise.
    """
    outcomes: list[ExpectationOutcome] = []

    present = set(batch.columns) | set(table_profile.columns)
    for column in contract.required_columns:
        ok = column in present
        outcomes.append(
            ExpectationOutcome(
                "table",
                "expect_column_to_exist",
                column,
                ok,
                0 if ok else 1,
                "present" if ok else "missing",
            )
        )

    profile = table_profile.copy()
    if contract.freshness and contract.freshness[0] in profile:
        profile[contract.freshness[0]] = _naive_utc(profile[contract.freshness[0]])
    if set(contract.key) <= set(profile.columns):
        # Table rules need counts, not the index of every offending row (the batch rules do).
        table_rules = table_expectations(contract, now)
        for result in _run_two_pass("table", profile, table_rules, "SUMMARY"):
            kind, column, unexpected, observed, _ = _describe(result)
            outcomes.append(
                ExpectationOutcome(
                    "table", kind, column, bool(result.success), unexpected, observed
                )
            )

    frame, batch_outcomes, bad = validate_batch(contract, batch, references)
    return ContractReport(
        table=contract.table,
        batch_rows=len(frame),
        table_rows=len(table_profile),
        outcomes=outcomes + batch_outcomes,
        bad_rows=bad,
    )


def validate_batch(
    contract: TableContract, batch: pd.DataFrame, references: dict[str, list] | None = None
) -> tuple[pd.DataFrame, list[ExpectationOutcome], pd.DataFrame]:
    """The row rules on a batch: (the batch numbered from 0, one outcome per expectation, the
    offending rows with their reasons)."""
    outcomes: list[ExpectationOutcome] = []
    reasons: dict[int, list[str]] = {}
    index = batch.index
    plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    frame = batch if plain else batch.reset_index(drop=True)  # (a copy of every column)
    if not frame.empty:
        checks = batch_expectations(contract, set(frame.columns), references or {})
        for result in _run_two_pass("batch", frame, checks, "COMPLETE"):
            kind, column, unexpected, observed, indexes = _describe(result)
            outcomes.append(
                ExpectationOutcome(
                    "batch", kind, column, bool(result.success), unexpected, observed
                )
            )
            for index in indexes:
                reasons.setdefault(int(index), []).append(f"{kind}({column})")

    bad = frame.loc[sorted(reasons)].copy()
    bad[REASON_COLUMN] = ["; ".join(reasons[i]) for i in sorted(reasons)]
    return frame, outcomes, bad
