"""Append-only prediction and feedback logs as date-partitioned Parquet files.

Record batches (columns) are queued by the request path and written by one background thread
(every `flush_seconds` or `max_rows`), so the request never waits for disk. `close()` drains
the queue: on a clean shutdown (SIGTERM included) nothing accepted is lost.
Layout: `<dir>/date=YYYY-MM-DD/part-<unix ms>-<n>.parquet`; monitoring reads the directory.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import queue
import threading
from pathlib import Path

log = logging.getLogger("mlops.serving")


class PartitionedLog:
    def __init__(
        self, directory: str | Path, schema, flush_seconds: float = 0.25, max_rows: int = 5_000
    ) -> None:
        self.directory = Path(directory)
        self.schema = schema
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = threading.Event()
        self._counter = itertools.count()
        self.written = 0
        self._thread = threading.Thread(
            target=self._run, name=f"log-{self.directory.name}", daemon=True
        )
        self._thread.start()

    def append(self, columns: dict[str, list]) -> None:
        """Queue one batch of records given as equal-length columns (one must be `ts`)."""
        if columns and columns["ts"]:
            self._queue.put(columns)

    def _drain(self) -> list[dict[str, list]]:
        batches, rows = [], 0
        while rows < self.max_rows:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            batches.append(batch)
            rows += len(batch["ts"])
        return batches

    def _write(self, batches: list[dict[str, list]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        by_date: dict[str, dict[str, list]] = {}
        for batch in batches:
            day = by_date.setdefault(
                batch["ts"][0].strftime("%Y-%m-%d"), {name: [] for name in self.schema.names}
            )
            for name, values in day.items():
                values.extend(batch[name])
        # One conversion per day and flush: per-batch conversions cost more GIL time in all.
        converted_by_day = {
            day: [pa.RecordBatch.from_pydict(columns, schema=self.schema)]
            for day, columns in by_date.items()
        }
        for day, converted in converted_by_day.items():
            folder = self.directory / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            name = folder / f"part-{stamp}-{next(self._counter)}.parquet"
            table = pa.Table.from_batches(converted, schema=self.schema)
            pq.write_table(table, name.with_suffix(".tmp"))
            name.with_suffix(".tmp").rename(name)  # readers never see half a file
            self.written += table.num_rows

    def _run(self) -> None:
        while not self._closed.wait(self.flush_seconds):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        while True:
            batch = self._drain()
            if not batch:
                return
            try:
                self._write(batch)
            except Exception:  # noqa: BLE001 - keep the records and try again on the next tick
                log.exception("could not write %d log batches; retrying", len(batch))
                for columns in batch:
                    self._queue.put(columns)
                return

    def close(self) -> None:
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


def feedback_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("ts", pa.timestamp("us")),
            ("year", pa.int64()),
            ("month", pa.int64()),
            ("day", pa.int64()),
            ("carrier", pa.string()),
            ("flight", pa.int64()),
            ("origin", pa.string()),
            ("arr_delay", pa.float64()),
            ("request_id", pa.string()),
        ]
    )


def read_log(directory: str | Path, start: dt.date | None = None, end: dt.date | None = None):
    """Everything logged so far, or only the date partitions from `start` to `end` (inclusive),
    as a DataFrame (empty if nothing)."""
    import pandas as pd
    import pyarrow.dataset as ds

    root = Path(directory)
    folders = [
        folder
        for folder in sorted(root.glob("date=*"))
        if (start is None or folder.name[5:] >= str(start))
        and (end is None or folder.name[5:] <= str(end))
    ]
    files = [str(f) for folder in folders for f in sorted(folder.glob("*.parquet"))]
    if not files:
        return pd.DataFrame()
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(root))
    return dataset.to_table().to_pandas()
