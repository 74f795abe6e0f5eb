"""Append-only prediction and feedback logs as date-partitioned Parquet files.

Record batches (columns) are queued by the request path and written by one background thread
(every `flush_seconds`, at most `max_rows` a file), so the request never waits for disk. Small
batches of lists are joined into one list per column as they arrive (`_Block`): queued as
they came, their thousands of lists a second kept the cyclic GC busy on the event loop. A file
costs much the same for 100 rows as for 1,000 (py-spy: Parquet writes every 0.25 s were a
fifth of a single-row server's CPU), hence a flush a second. Under 1,000-row requests
(`bench/serving_cpu.py`, uncompressed files without statistics: `logfiles.SMALL_FILE_OPTIONS`)
this thread cost 1.3-1.6 ms per request with files of 5,000 rows and 1.05 ms with files of
20,000, for ~8 MB more peak RSS (717-722 MB against 707-716); files of 50,000 rows had raised
it by ~35 MB: 20,000 it is.
`close()` drains the queue: on a clean shutdown (SIGTERM included) nothing accepted is lost.

The writer never stops: a batch that cannot be converted to the log's schema (a poison record)
is dropped, counted (`dropped`, `on_drop`) and logged, never re-queued, so it cannot block the
batches after it. A batch's columns are lists, or, for large batches, numpy arrays and `Repeat`
(one value for every row: a request's id, the model, the time), converted to Arrow without a
Python loop (measured: converting lists was 0.67 ms of a 1,000-row request's 6.8 ms CPU, the
time column alone a fifth of it). A failed disk write keeps the converted rows and retries them
(bounded by `max_pending_rows`). Identifying columns (`hash_columns`) are stored as a keyed hash.
Every `compact_seconds` the writer merges its own small files of a day into one (see
`logfiles`); a day's files from all replicas are merged by the retention job.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import logging
import operator
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops_platform.serving.logfiles import (  # noqa: F401 - read_log is this module's API
    PARTITION_PREFIX,
    SMALL_FILE_OPTIONS,
    merge_files,
    read_log,
    write_atomic,
    writer_token,
)

log = logging.getLogger("mlops.serving")
#: Rows converted to Arrow at a time (a conversion holds the GIL; ~2 ms per slice).
CONVERT_ROWS = 1_000


@dataclass(frozen=True)
class Repeat:
    """One value for each of `rows` rows of a batch, without a list of `rows` copies."""

    value: object
    rows: int

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Repeat(self.value, len(range(*index.indices(self.rows))))
        if not -self.rows <= index < self.rows:
            raise IndexError(index)
        return self.value

    def __iter__(self):
        return itertools.repeat(self.value, self.rows)


def _slices(columns: dict, size: int):
    rows = len(next(iter(columns.values())))
    if rows <= size:
        yield columns
        return
    for start in range(0, rows, size):
        yield {name: values[start : start + size] for name, values in columns.items()}


def _arrow(values, type_):
    """One column as an Arrow array: a Repeat or a numpy array without a Python loop."""
    import pyarrow as pa

    if isinstance(values, Repeat):
        return pa.repeat(pa.scalar(values.value, type=type_), values.rows)
    return pa.array(values, type=type_)


def _day(ts) -> str:
    """The partition of a batch: the date of its first timestamp (datetime or datetime64)."""
    first = ts[0]
    if isinstance(first, np.datetime64):
        return str(first.astype("datetime64[D]"))
    return _day_name(first.toordinal())  # strftime per batch: a fifth of a flush's conversion


@functools.lru_cache(maxsize=64)
def _day_name(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def keyed_hash(key: bytes, value: str | None) -> str | None:
    """HMAC-SHA256 of a value (hex, 32 characters): joinable, not reversible without the key."""
    if value is None:
        return None
    return hmac.new(key, str(value).encode(errors="replace"), hashlib.sha256).hexdigest()[:32]


class _Block:
    """Small batches of lists (one day's) joined as they arrive: one list per column of the
    schema, and where each batch starts (a bad batch is found and dropped alone).

    Why: a single-row service queued ~1,300 batches a second, each a dict of ~35 lists, and
    every one of those containers lived until the next flush. The cyclic GC counts such
    survivors: they set off a young collection every ~0.2 s that traversed them (2-3 ms on the
    event loop) and a gen-1 collection every few seconds (9-12 ms), the service's longest
    stalls (`gc.callbacks`, 27 Nov 2026). Values appended to a few long lists survive without
    a container of their own.
    """

    __slots__ = ("columns", "day", "rows", "starts")

    def __init__(self, size: int, day: str) -> None:
        self.columns: list[list] = [[] for _ in range(size)]
        self.day = day
        self.rows = 0
        self.starts: list[int] = []  # ints: no container per batch

    def add(self, parts, n: int, full: bool) -> None:
        """Append a batch's columns (`full`: every one has its `n` values)."""
        self.starts.append(self.rows)
        if full:  # the usual case: extended in C (a Python loop was most of the cost)
            collections.deque(map(list.extend, self.columns, parts), maxlen=0)
        else:
            for column, values in zip(self.columns, parts, strict=True):
                if values is not None and len(values):
                    column.extend(values)
                else:  # None or []: nulls for the batch's rows
                    column.extend(itertools.repeat(None, n))
        self.rows += n

    def batch(self, names: list[str]) -> dict[str, list]:
        """All its rows as one batch (the log's format: a list per column)."""
        return dict(zip(names, self.columns, strict=True))

    def batches(self, names: list[str]):
        """Its batches one by one, as they were appended."""
        for start, end in itertools.pairwise([*self.starts, self.rows]):
            columns = zip(names, self.columns, strict=True)
            yield {name: column[start:end] for name, column in columns}


class PartitionedLog:
    def __init__(
        self,
        directory: str | Path,
        schema,
        flush_seconds: float = 1.0,
        max_rows: int = 20_000,
        compact_seconds: float = 60.0,
        hash_columns: frozenset[str] = frozenset(),
        hash_key: bytes = b"",
        on_drop: Callable[[int, str], None] | None = None,
        max_pending_rows: int = 1_000_000,
    ) -> None:
        self.directory = Path(directory)
        self.schema = schema
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.compact_seconds = compact_seconds
        self.hash_columns = frozenset(c for c in hash_columns if c in schema.names)
        if self.hash_columns and not hash_key:
            raise ValueError("hash_columns need a hash_key")
        self.hash_key = hash_key
        self.on_drop = on_drop
        self.max_pending_rows = max_pending_rows
        self.token = writer_token()
        #: columnar batches and sealed blocks of list batches, in order of arrival
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._names = list(schema.names)
        #: a batch's columns in the schema's order, as a tuple (itemgetter, in C)
        self._columns_of = (
            operator.itemgetter(*self._names)
            if len(self._names) > 1
            else lambda batch: (batch[self._names[0]],)
        )
        self._block: _Block | None = None  # list batches being joined (see `_Block`)
        self._lock = threading.Lock()  # `_block`: appended on the event loop, sealed here
        self._retry: list[tuple[str, object]] = []  # converted (day, table) not yet on disk
        self._closed = threading.Event()
        self._counter = itertools.count()
        self._last_compaction = time.monotonic()
        self._compact_on_close = True
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(
            target=self._run, name=f"log-{self.directory.name}", daemon=True
        )
        self._thread.start()

    def append(self, columns: dict) -> None:
        """Queue one batch of records given as equal-length columns (one must be `ts`): all
        lists, or (a large batch, its `ts` not a list) numpy arrays, lists and `Repeat`s."""
        if not columns or not len(ts := columns["ts"]):
            return
        joinable = self._joinable(columns, ts) if type(ts) is list else None
        with self._lock:
            if joinable is None:  # columnar (or odd): as it is, after the rows before it
                self._seal()
                self._queue.put(columns)
                return
            day, parts, full = joinable
            block = self._block
            if block is None or block.day != day or block.rows >= self.max_rows:
                self._seal()
                block = self._block = _Block(len(self._names), day)
            block.add(parts, len(ts), full)

    def _joinable(self, columns: dict, ts: list):
        """A list batch's day, its columns in the schema's order (None for one it lacks) and
        whether each has its `len(ts)` values; None if one has another number of values (not
        none) or `ts` is not times: such a batch is queued alone, and the writer drops it
        when it does not convert. Never raises: this runs on the request path."""
        n = len(ts)
        try:
            try:
                parts = self._columns_of(columns)
                lengths = set(map(len, parts))  # in C; TypeError if a column is None
            except (KeyError, TypeError):
                parts = [columns.get(name) for name in self._names]
                lengths = {len(p) for p in parts if p is not None} | {0}
            if lengths <= {0, n}:
                return _day(ts), parts, lengths == {n}
            return None
        except Exception:  # noqa: BLE001 - a value without a length: the writer drops it
            return None

    def _seal(self) -> None:
        """Queue the block being joined (with `_lock` held)."""
        if self._block is not None:
            self._queue.put(self._block)
            self._block = None

    def _drain(self) -> list:
        """Queued batches and blocks, up to `max_rows` rows (the block being joined included)."""
        with self._lock:
            self._seal()
        batches, rows = [], 0
        while rows < self.max_rows:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            batches.append(batch)
            rows += batch.rows if isinstance(batch, _Block) else len(batch["ts"])
        return batches

    def _drop(self, rows: int, reason: str) -> None:
        self.dropped += rows
        log.error("dropped %d %s log records that cannot be stored: %s", rows, self.name, reason)
        if self.on_drop is not None:
            self.on_drop(rows, reason)

    @property
    def name(self) -> str:
        return self.directory.name

    def _convert(self, batches: list):
        """One Arrow batch per day; a batch that does not convert is dropped on its own."""
        import pyarrow as pa

        def days_of(group):
            by_date: dict[str, list[dict]] = {}  # list batches waiting, by day
            converted = []
            for batch in group:
                if isinstance(batch, _Block):
                    by_date.setdefault(batch.day, []).append(batch.batch(self._names))
                    continue
                day_name = _day(batch["ts"])
                if type(batch["ts"]) is not list:
                    # a large batch's columns arrive as arrays and Repeats (its time a Repeat):
                    # converted as they are, after the batches before it (the log keeps the
                    # order of arrival). Told apart by one column, not a set of every column's
                    # type: that was a third of a flush's time at 5,000 single-row batches.
                    for pending_day, batches in by_date.items():
                        converted += convert(pending_day, self._joined(batches))
                    by_date.clear()
                    n = len(batch["ts"])
                    columns = {name: batch.get(name, Repeat(None, n)) for name in self.schema.names}
                    converted += convert(day_name, columns)
                    continue
                by_date.setdefault(day_name, []).append(batch)
            for day_name, batches in by_date.items():
                converted += convert(day_name, self._joined(batches))
            return converted

        def convert(day: str, columns: dict):
            for name in self.hash_columns:
                values = columns[name]
                columns[name] = (
                    Repeat(keyed_hash(self.hash_key, values.value), values.rows)
                    if isinstance(values, Repeat)
                    else [keyed_hash(self.hash_key, v) for v in values]
                )
            # In slices: one conversion holds the GIL throughout, and the event loop waits.
            return [
                (day, pa.RecordBatch.from_arrays(arrays, schema=self.schema))
                for part in _slices(columns, CONVERT_ROWS)
                for arrays in [[_arrow(part[f.name], f.type) for f in self.schema]]
            ]

        # One conversion per day and flush (per-batch conversions cost more GIL time in all);
        # only if that fails is each batch converted alone, to find and drop the bad one.
        try:
            return days_of(batches)
        except Exception:  # noqa: BLE001 - isolate the poison batch below
            pass
        converted = []
        singles = (
            piece
            for item in batches
            for piece in (item.batches(self._names) if isinstance(item, _Block) else [item])
        )
        for batch in singles:
            try:
                converted += days_of([batch])
            except Exception as exc:  # noqa: BLE001 - a record that cannot be stored
                rows = len(batch.get("ts") or [])
                self._drop(rows, f"{type(exc).__name__}: {str(exc)[:200]}")
        return converted

    def _joined(self, batches: list[dict[str, list]]) -> dict[str, list]:
        """Batches of lists as one list per column of the schema (a column a batch lacks, or
        gives no values, is null for its rows), transposed and joined in C: a Python loop over
        batches and columns cost a single-row request ~10 us in py-spy, as much as parsing,
        checking and scoring it."""
        names = self.schema.names
        if len(batches) == 1 and list(batches[0]) == names and all(map(len, batches[0].values())):
            return dict(batches[0])  # a block: already one list per column
        try:
            # per batch, its lists in the schema's order; then per column, the batches' lists
            parts_by_column = zip(*map(operator.itemgetter(*names), batches), strict=True)
        except KeyError:
            parts_by_column = ([batch.get(name) for batch in batches] for name in names)
        columns = {}
        for name, parts in zip(names, parts_by_column, strict=True):
            if not all(parts):  # None or []: nulls for the batch's rows
                parts = [p or [None] * len(b["ts"]) for p, b in zip(parts, batches, strict=True)]
            columns[name] = list(itertools.chain.from_iterable(parts))
        return columns

    def _write(self, converted) -> None:
        import pyarrow as pa

        by_day: dict[str, list] = {}
        for day, batch in converted:
            by_day.setdefault(day, []).append(batch)
        for day, parts in by_day.items():
            table = pa.Table.from_batches(parts, schema=self.schema)
            folder = self.directory / f"{PARTITION_PREFIX}{day}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                name = f"part-{self.token}-{next(self._counter):08d}.parquet"
                write_atomic(table, folder / name, **SMALL_FILE_OPTIONS)
            except OSError:
                log.exception("could not write %d %s log rows; retrying", table.num_rows, self.name)
                self._keep_for_retry(day, table)
                continue
            self.written += table.num_rows

    def _keep_for_retry(self, day: str, table) -> None:
        self._retry.append((day, table))
        pending = sum(t.num_rows for _, t in self._retry)
        while pending > self.max_pending_rows and self._retry:
            _, oldest = self._retry.pop(0)
            pending -= oldest.num_rows
            self._drop(oldest.num_rows, "disk unwritable and the retry buffer is full")

    def _run(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401 - imported here at start, not on the first flush

        # The first conversion imports pyarrow's pandas glue (~15 ms holding the import lock
        # and the GIL): at start, not while the first requests wait (seen with py-spy).
        pa.RecordBatch.from_pydict({name: [] for name in self.schema.names}, schema=self.schema)

        while not self._closed.wait(self.flush_seconds):
            self._flush()
            if time.monotonic() - self._last_compaction >= self.compact_seconds:
                self.compact()
        self._flush()
        if self._compact_on_close:
            self.compact()

    def _flush(self) -> None:
        retry, self._retry = self._retry, []
        if retry:
            self._write([(day, batch) for day, table in retry for batch in table.to_batches()])
        while True:
            batches = self._drain()
            if not batches:
                return
            try:
                self._write(self._convert(batches))
            except Exception:  # noqa: BLE001 - the writer thread must never die
                rows = sum(
                    b.rows if isinstance(b, _Block) else len(b.get("ts") or []) for b in batches
                )
                log.exception("unexpected error writing the %s log", self.name)
                self._drop(rows, "unexpected writer error")

    def compact(self) -> int:
        """Merge this writer's small files, per day, into one; returns the files merged."""
        self._last_compaction = time.monotonic()
        merged = 0
        for folder in sorted(self.directory.glob(f"{PARTITION_PREFIX}*")):
            mine = sorted(folder.glob(f"part-{self.token}-*.parquet"))
            if len(mine) < 2:
                continue
            target = folder / f"merged-{self.token}-{next(self._counter):08d}.parquet"
            try:
                merge_files(mine, target)
                merged += len(mine)
            except Exception:  # noqa: BLE001 - the small files stay and are merged later
                log.exception("could not merge %d files in %s", len(mine), folder)
        return merged

    def close(self, compact: bool = True) -> None:
        """Write what is queued (and merge this writer's files, unless `compact` is False)."""
        self._compact_on_close = compact
        self._closed.set()
        self._thread.join(timeout=30)


def prediction_schema(spec):
    """Columns of the prediction log: who scored what, when, and the features as received."""
    import pyarrow as pa

    return pa.schema(
        [
            ("ts", pa.timestamp("us")),
            ("request_id", pa.string()),
            ("row", pa.int64()),
            ("route", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("alias", pa.string()),
            ("score", pa.float64()),
            ("shadow_version", pa.string()),
            ("shadow_score", pa.float64()),
        ]
        + [(c, pa.string()) for c in spec.features.categorical]
        + [(c, pa.float64()) for c in spec.features.numeric]
    )
