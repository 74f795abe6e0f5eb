"""Retention: old log days, quarantined rows and reports go; closed days become one file."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd

from mlops_platform.clock import WallClock
from mlops_platform.retention.jobs import retention
from mlops_platform.retention.policy import apply_log_retention, expired_reports
from mlops_platform.serving.logfiles import read_log
from mlops_platform.serving.predictionlog import PartitionedLog
from mlops_platform.warehouse.resources import DuckDBWarehouse

TODAY = dt.date(2026, 3, 10)


def write_days(directory, days, writers=2):
    import pyarrow as pa

    schema = pa.schema([("ts", pa.timestamp("us")), ("request_id", pa.string())])
    for w in range(writers):
        log = PartitionedLog(directory, schema, flush_seconds=0.01, compact_seconds=3600)
        for day in days:
            log.append(
                {"ts": [dt.datetime.combine(day, dt.time(12))], "request_id": [f"{day}-{w}"]}
            )
        log._flush()  # noqa: SLF001 - one file per writer and day, without merging
        log._closed.set()  # noqa: SLF001
        log._thread.join()  # noqa: SLF001


def test_log_retention_deletes_old_days_and_merges_closed_ones(tmp_path):
    days = [TODAY - dt.timedelta(days=n) for n in (40, 5, 0)]
    write_days(tmp_path, days)
    done = apply_log_retention(tmp_path, keep_days=30, today=TODAY)
    assert done.deleted_days == [str(days[0])] and done.merged_days == [str(days[1])]
    assert len(list((tmp_path / f"date={days[1]}").glob("*.parquet"))) == 1
    assert len(list((tmp_path / f"date={days[2]}").glob("*.parquet"))) == 2  # today: still open
    kept = sorted(read_log(tmp_path)["request_id"])
    assert kept == sorted(f"{d}-{w}" for d in days[1:] for w in range(2))


def test_retention_job_applies_every_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_DIR", str(tmp_path / "serving"))
    monkeypatch.setenv("MLOPS_RETENTION_PREDICTION_DAYS", "30")
    monkeypatch.setenv("MLOPS_RETENTION_QUARANTINE_DAYS", "10")
    monkeypatch.setenv("MLOPS_RETENTION_REPORT_DAYS", "7")
    today = dt.date.today()
    write_days(tmp_path / "serving" / "predictions", [today - dt.timedelta(days=60), today], 1)
    old_report = tmp_path / "reports" / "flight_delay" / "old.html"
    old_report.parent.mkdir(parents=True)
    old_report.write_text("x")
    week_ago = (dt.datetime.now() - dt.timedelta(days=8)).timestamp()
    os.utime(old_report, (week_ago, week_ago))
    new_report = old_report.with_name("new.html")
    new_report.write_text("y")
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    warehouse.append(
        "quarantine",
        "flights",
        pd.DataFrame({"flight": [1, 2], "_quarantined_at": [now - dt.timedelta(days=20), now]}),
    )
    result = retention.execute_in_process(resources={"warehouse": warehouse, "clock": WallClock()})
    assert result.success
    assert list(warehouse.read_table("quarantine", "flights")["flight"]) == [2]
    assert not old_report.exists() and new_report.exists()
    assert [p.name for p in (tmp_path / "serving" / "predictions").iterdir()] == [f"date={today}"]
    assert expired_reports(tmp_path / "reports", 7, dt.datetime.now()) == []


def test_retention_counts_days_on_the_platform_clock(tmp_path, monkeypatch):
    """With a clock table 30 days ahead of the wall clock (a replay), rows quarantined 20
    days ago and today are both past a 10-day retention: the job reads time from the clock."""
    import sqlalchemy as sa

    from mlops_platform.clock import TableClock

    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_DIR", str(tmp_path / "serving"))
    monkeypatch.setenv("MLOPS_RETENTION_QUARANTINE_DAYS", "10")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    url = f"sqlite:///{tmp_path / 'clock.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE replay_clock (now TIMESTAMP)"))
        conn.execute(
            sa.text("INSERT INTO replay_clock VALUES (:t)"), {"t": now + dt.timedelta(days=30)}
        )
    engine.dispose()
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.append(
        "quarantine",
        "flights",
        pd.DataFrame({"flight": [1, 2], "_quarantined_at": [now - dt.timedelta(days=20), now]}),
    )
    resources = {"warehouse": warehouse, "clock": TableClock(url=url)}
    assert retention.execute_in_process(resources=resources).success
    assert warehouse.read_table("quarantine", "flights").empty
