"""Retention settings and the pure steps that apply them (no Dagster here).

- Prediction and feedback logs: date partitions older than their retention are deleted; a
  closed day's files (every replica's) are merged into one, so a day is one file.
- Quarantined rows (`quarantine.<table>`) older than their retention are deleted.
- Generated reports under `<data dir>/reports` older than their retention are deleted.
A retention of 0 days keeps everything.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mlops_platform.serving.logfiles import (
    PARTITION_PREFIX,
    live_files,
    merge_files,
    partition_day,
    writer_token,
)


def _days(name: str, default: str) -> int:
    return field(default_factory=lambda: int(os.environ.get(name, default)))


@dataclass(frozen=True)
class RetentionSettings:
    prediction_days: int = _days("MLOPS_RETENTION_PREDICTION_DAYS", "400")
    feedback_days: int = _days("MLOPS_RETENTION_FEEDBACK_DAYS", "400")
    quarantine_days: int = _days("MLOPS_RETENTION_QUARANTINE_DAYS", "90")
    report_days: int = _days("MLOPS_RETENTION_REPORT_DAYS", "180")


@dataclass
class LogRetention:
    deleted_days: list[str] = field(default_factory=list)
    merged_days: list[str] = field(default_factory=list)


def apply_log_retention(directory: Path, keep_days: int, today: dt.date) -> LogRetention:
    """Delete partitions older than `keep_days`; merge each closed day into one file.

    A day counts as closed from the day after tomorrow on, so no replica still writes it."""
    done = LogRetention()
    for folder in sorted(Path(directory).glob(f"{PARTITION_PREFIX}*")):
        day = partition_day(folder)
        if day is None:
            continue
        if keep_days > 0 and day < today - dt.timedelta(days=keep_days):
            shutil.rmtree(folder)
            done.deleted_days.append(str(day))
            continue
        if day < today - dt.timedelta(days=1):
            files = live_files(folder)
            if len(files) > 1:
                merge_files(files, folder / f"day-{writer_token()}.parquet")
                done.merged_days.append(str(day))
    return done


def expired_reports(reports: Path, keep_days: int, now: dt.datetime) -> list[Path]:
    """Report files last written more than `keep_days` ago."""
    if keep_days <= 0 or not reports.exists():
        return []
    cutoff = (now - dt.timedelta(days=keep_days)).timestamp()
    return sorted(p for p in reports.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff)


def delete_old_quarantine(warehouse, keep_days: int, now: dt.datetime) -> dict[str, int]:
    """Delete quarantined rows older than `keep_days`; returns rows deleted per table."""
    from mlops_platform.contracts.quarantine import QUARANTINE_SCHEMA
    from mlops_platform.contracts.rules import CONTRACTS
    from mlops_platform.warehouse.base import quote

    deleted: dict[str, int] = {}
    if keep_days <= 0:
        return deleted
    cutoff = now - dt.timedelta(days=keep_days)
    for table in CONTRACTS:
        if not warehouse.table_exists(QUARANTINE_SCHEMA, table):
            continue
        where = f"FROM {quote(QUARANTINE_SCHEMA)}.{quote(table)} WHERE _quarantined_at < :cutoff"
        count = int(warehouse.query(f"SELECT count(*) AS n {where}", {"cutoff": cutoff})["n"][0])
        if count:
            warehouse.execute(f"DELETE {where}", {"cutoff": cutoff})
        deleted[table] = count
    return deleted
