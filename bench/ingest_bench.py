"""Benchmark: load the whole 2013 year from the source database into an empty warehouse, then
a day's increment after 45 days.

Three variants, each in its own process so peak memory is its own:
  platform  the `landing/*` assets (dlt into `landing`) and the `raw/*` assets (contract audit and
            one-transaction publish) materialized by Dagster; ops time includes the publish
  dlt       plain dlt, well configured: `sql_database` with the connectorx backend (Arrow, no
            Python row objects), Parquet loader files; append for the year, merge on the
            primary key with an incremental `updated_at` cursor for the increment
  floor     pandas `read_sql` of each table + DuckDB `CREATE TABLE AS` for the year; for the
            increment pandas reads the rows changed since the cursor and DuckDB deletes their
            keys and inserts them (a minimal merge; no dlt, no audit)

The increment: each variant loads a source released through 2013-02-14 (untimed, in the same
process, so imports are warm), the source clock moves one day (untimed), and the variant loads
what changed (about 1,000 new flights and 1,000 outcomes). For the platform, "work" is the sum
of its steps' execution times, with their CPU seconds (Dagster's per-run overhead is shown
apart). The platform's
runs record into one Dagster instance made before the timers, as a deployment's runs do.

Prints wall and CPU seconds (user+sys of the variant's process), flights rows/s, peak RSS, the
ratios platform/floor and platform/dlt, and the load average (a busy machine stretches wall
times; CPU seconds are what the work costs). Every variant imports its libraries before its
timer (`IMPORTS`; the CPU seconds they took are printed apart), as the increment always did.
Usage: python bench/ingest_bench.py [--keep DIR] [--skip-year]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLIGHTS = 336_776
TABLES = ("flights", "planes", "airlines", "airports")
#: The increment: a source released through INCREMENT_FROM, then one more day.
INCREMENT_FROM = dt.datetime(2013, 2, 15)
#: Seconds a day's increment may take (its steps' execution; issue 15).
INCREMENT_TARGET = 0.5


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU of this process and of any it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _platform(workdir: Path, source: Path, database: str):
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from mlops_platform.clock import TableClock
    from mlops_platform.domains import load_domain
    from mlops_platform.ingestion.resources import source_resources
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    flights = load_domain("flights")
    url = f"sqlite:///{source}"
    warehouse = DuckDBWarehouse(
        path=str(workdir / database), pipelines_dir=str(workdir / f"dlt_{database}")
    )
    resources = {
        "dlt": DagsterDltResource(),
        **source_resources(flights, urls={"flight_ops": url}),
        "clock": TableClock(url=url),
        "warehouse": warehouse,
    }
    _instance()
    return dg, flights, warehouse, resources


QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _step_seconds(result) -> float:
    """Execution time of the run's steps (what the assets did, without Dagster's run overhead)."""
    return sum(
        e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    )


@functools.cache
def _instance():
    """The Dagster instance every run of the variant records into, made before its timers (by
    `_platform`): a deployment's instance outlives its runs, and making one (two in-memory
    SQLite storages, each stamped by alembic) at every `materialize` is not ingestion work (5%
    of the platform's year profile)."""
    import dagster as dg

    return dg.DagsterInstance.ephemeral()


def _materialize(dg, assets, resources, allowed_failures=frozenset()) -> tuple[Timer, float, float]:
    """The run's timer, its steps' execution time and its steps' CPU seconds.

    The steps' CPU is read at each step's start and end event as the instance records it (the
    in-process executor runs the steps one after another in this process): on a shared
    machine their wall time stretches with the load, their CPU much less."""
    instance = _instance()
    marks: list[float] = []
    record = instance.handle_new_event

    def handle(event, **kwargs):
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            marks.append(cpu_seconds())
        return record(event, **kwargs)

    instance.handle_new_event = handle
    try:
        with Timer() as timer:
            result = dg.materialize(
                assets,
                resources=resources,
                run_config=QUIET,
                raise_on_error=False,
                instance=instance,
            )
    finally:
        del instance.handle_new_event  # the class's own again
    failed = {e.step_key for e in result.get_step_failure_events()}
    assert failed <= allowed_failures, failed
    steps_cpu = sum(end - start for start, end in zip(marks[::2], marks[1::2], strict=True))
    return timer, _step_seconds(result), steps_cpu


def run_platform(workdir: Path) -> dict:
    from mlops_platform.contracts.checks import published_tables
    from mlops_platform.ingestion.assets import build_landing_assets

    dg, flights, warehouse, resources = _platform(
        workdir, workdir / "source.sqlite", "platform.duckdb"
    )
    timings = {}
    steps = (
        ("flight_ops", [build_landing_assets(flights, "flight_ops")]),
        ("weather", [build_landing_assets(flights, "weather_feed")]),
        ("publish", published_tables(flights)),
    )
    for name, assets in steps:
        # The year's weather holds one impossible reading (a 1,048 mph wind on Feb 12): its
        # blocking contract stops raw.weather (its source's publish step), as it must;
        # everything else has to succeed.
        timings[name], _, _ = _materialize(dg, assets, resources, {"weather_feed_published"})
    flights_rows = int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    weather = int(warehouse.query("SELECT count(*) AS n FROM raw.weather")["n"].iloc[0])
    assert flights_rows == FLIGHTS, flights_rows
    return {
        "flights_rows": flights_rows,
        "weather_rows": weather,
        "ops_seconds": timings["flight_ops"].wall + timings["publish"].wall,
        "cpu_seconds": timings["flight_ops"].cpu + timings["publish"].cpu,
        "weather_seconds": timings["weather"].wall,
    }


def run_platform_increment(workdir: Path) -> dict:
    from mlops_platform.contracts.checks import build_published_tables
    from mlops_platform.ingestion.assets import build_landing_assets
    from simulator.flights import replay

    source = _copy_source(workdir, "platform")
    dg, flights, warehouse, resources = _platform(workdir, source, "platform_inc.duckdb")
    assets = [
        build_landing_assets(flights, "flight_ops"),
        build_published_tables(flights, "flight_ops"),
    ]
    _materialize(dg, assets, resources)  # the first 45 days (untimed)
    before = _raw_count(warehouse)
    replay.set_clock(f"sqlite:///{source}", INCREMENT_FROM + dt.timedelta(days=1))
    landed = _changed_rows(source, warehouse)
    timer, work, work_cpu = _materialize(dg, assets, resources)
    return {
        "flights_rows": landed,
        "new_flights": _raw_count(warehouse) - before,
        "ops_seconds": work,
        "steps_cpu_seconds": work_cpu,
        "run_seconds": timer.wall,
        "cpu_seconds": timer.cpu,
    }


def _raw_count(warehouse) -> int:
    return int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])


def _copy_source(workdir: Path, variant: str) -> Path:
    own = workdir / f"source_inc_{variant}.sqlite"
    shutil.copy(workdir / "source_inc.sqlite", own)
    return own


def _changed_rows(source: Path, warehouse) -> int:
    """Flights whose updated_at is past the newest one in raw (what an increment must carry)."""
    import sqlite3

    newest = warehouse.query("SELECT max(updated_at) AS m FROM raw.flights")["m"].iloc[0]
    stamp = newest.tz_convert("UTC").tz_localize(None) if newest.tzinfo else newest
    with sqlite3.connect(source) as conn:
        return conn.execute(
            "SELECT count(*) FROM flights WHERE updated_at > ?",
            (stamp.strftime("%Y-%m-%d %H:%M:%S.%f"),),
        ).fetchone()[0]


def _dlt_source(url: str, incremental: bool):
    import dlt
    from dlt.sources.sql_database import sql_database

    source = sql_database(
        url,
        table_names=list(TABLES),
        backend="connectorx",
        chunk_size=100_000,
        reflection_level="full",
    )
    if incremental:
        keys = {
            "flights": ["year", "month", "day", "carrier", "flight", "origin"],
            "planes": ["tailnum"],
            "airlines": ["carrier"],
            "airports": ["faa"],
        }
        for table in TABLES:
            source.resources[table].apply_hints(
                write_disposition="merge",
                primary_key=keys[table],
                incremental=dlt.sources.incremental("updated_at"),
            )
    return source


def _dlt_pipeline(workdir: Path, name: str):
    import dlt

    from mlops_platform.warehouse.duckdb import DuckDBStore

    warehouse = DuckDBStore(path=str(workdir / f"{name}.duckdb"))
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=warehouse.dlt_destination(),
        dataset_name="raw",
        pipelines_dir=str(workdir / f"dlt_{name}"),
    )
    return warehouse, pipeline


def run_dlt_append(workdir: Path) -> dict:
    warehouse, pipeline = _dlt_pipeline(workdir, "append_bench")
    with Timer() as timer:
        pipeline.run(
            _dlt_source(f"sqlite:///{workdir / 'source.sqlite'}", False),
            loader_file_format="parquet",
        )
    flights = _raw_count(warehouse)
    assert flights == FLIGHTS, flights
    return {"flights_rows": flights, "ops_seconds": timer.wall, "cpu_seconds": timer.cpu}


def run_dlt_increment(workdir: Path) -> dict:
    from simulator.flights import replay

    source = _copy_source(workdir, "dlt")
    url = f"sqlite:///{source}"
    warehouse, pipeline = _dlt_pipeline(workdir, "merge_bench")
    pipeline.run(_dlt_source(url, True), loader_file_format="parquet")  # untimed
    before = _raw_count(warehouse)
    replay.set_clock(url, INCREMENT_FROM + dt.timedelta(days=1))
    landed = _changed_rows(source, warehouse)
    with Timer() as timer:
        pipeline.run(_dlt_source(url, True), loader_file_format="parquet")
    return {
        "flights_rows": landed,
        "new_flights": _raw_count(warehouse) - before,
        "ops_seconds": timer.wall,
        "cpu_seconds": timer.cpu,
    }


def run_floor(workdir: Path) -> dict:
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{workdir / 'source.sqlite'}")
    with Timer() as timer, duckdb.connect(str(workdir / "floor.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw")
        for table in TABLES:
            frame = pd.read_sql_table(table, engine)  # noqa: F841 - read by DuckDB below
            conn.execute(f"CREATE TABLE raw.{table} AS SELECT * FROM frame")
        flights = conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0]
    return {"flights_rows": flights, "ops_seconds": timer.wall, "cpu_seconds": timer.cpu}


FLOOR_KEYS = {
    "flights": ["year", "month", "day", "carrier", "flight", "origin"],
    "planes": ["tailnum"],
    "airlines": ["carrier"],
    "airports": ["faa"],
}


def _floor_merge(engine, conn, cursors: dict) -> int:
    """Read each table's rows since its cursor with pandas, replace their keys in DuckDB."""
    import pandas as pd
    import sqlalchemy as sa

    read = 0
    for table, key in FLOOR_KEYS.items():
        since = cursors.get(table)
        query = f"SELECT * FROM {table}" + (" WHERE updated_at >= :since" if since else "")
        dates = ["updated_at", "time_hour"] if table == "flights" else ["updated_at"]
        frame = pd.read_sql_query(
            sa.text(query), engine, params={"since": since}, parse_dates=dates
        )
        read = len(frame) if table == "flights" else read
        if not conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
            "AND table_name = ?",
            [table],
        ).fetchone()[0]:
            conn.execute(f"CREATE TABLE raw.{table} AS SELECT * FROM frame")
        else:
            match = " AND ".join(f"r.{c} = f.{c}" for c in key)
            conn.execute("BEGIN")
            conn.execute(f"DELETE FROM raw.{table} r USING frame f WHERE {match}")
            conn.execute(f"INSERT INTO raw.{table} SELECT * FROM frame")
            conn.execute("COMMIT")
        newest = conn.execute(f"SELECT max(updated_at) FROM raw.{table}").fetchone()[0]
        cursors[table] = newest.strftime("%Y-%m-%d %H:%M:%S.%f")
    return read


def run_floor_increment(workdir: Path) -> dict:
    import duckdb
    import sqlalchemy as sa

    from simulator.flights import replay

    source = _copy_source(workdir, "floor")
    url = f"sqlite:///{source}"
    engine = sa.create_engine(url)
    cursors: dict = {}
    with duckdb.connect(str(workdir / "floor_inc.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw")
        _floor_merge(engine, conn, cursors)  # untimed
        before = conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0]
        replay.set_clock(url, INCREMENT_FROM + dt.timedelta(days=1))
        with Timer() as timer:
            read = _floor_merge(engine, conn, cursors)
        after = conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0]
    return {
        "flights_rows": read,
        "new_flights": after - before,
        "ops_seconds": timer.wall,
        "cpu_seconds": timer.cpu,
    }


VARIANTS = {
    "platform": run_platform,
    "dlt": run_dlt_append,
    "floor": run_floor,
    "platform-increment": run_platform_increment,
    "dlt-increment": run_dlt_increment,
    "floor-increment": run_floor_increment,
}


#: What each variant imports, before its timer: a variant's libraries load once per process
#: whatever it ingests (Great Expectations alone takes ~4.5 s of CPU here, more than the
#: floor's whole year), so every variant is timed warm and its imports are printed apart.
#: Modules a library imports lazily on first use are listed too (found by diffing
#: `sys.modules` around each variant's timers): dlt loads pyarrow and numpy at its first Arrow
#: batch, Dagster its run and event storages (and alembic) at its first run, the platform its
#: publish modules at its first publish.
IMPORTS = {
    "floor": ("pandas", "duckdb", "sqlalchemy", "sqlalchemy.dialects.sqlite", "numpy.rec"),
    "dlt": (
        "dlt",
        "dlt.sources.sql_database",
        "duckdb",
        "connectorx",
        "numpy",
        "pyarrow",
        "dlt.common.libs.pyarrow",
        "sqlalchemy.dialects.sqlite",
        "dlt.destinations.impl.duckdb.duck",
    ),
    "platform": (
        "dagster",
        "dagster_dlt",
        "dlt",
        "dlt.sources.sql_database",
        "duckdb",
        "connectorx",
        "great_expectations",
        "pyarrow",
        "dlt.common.libs.pyarrow",
        "pyarrow.pandas_compat",
        "sqlalchemy.dialects.sqlite",
        "dlt.destinations.impl.duckdb.duck",
        "dagster._core.execution.execute_in_process",
        "dagster._core.instance.factory",
        "dagster._core.storage.event_log",
        "dagster._core.storage.runs",
        "dagster._core.storage.schedules.sqlite",
        "alembic.command",
        "mlops_platform.contracts.publish",
        "mlops_platform.contracts.warehouse_audit",
    ),
}


def warm_imports(variant: str) -> float:
    """Import the variant's libraries; returns the CPU seconds it took."""
    import importlib

    with Timer() as timer:
        for module in IMPORTS[variant.removesuffix("-increment")]:
            importlib.import_module(module)
    return timer.cpu


def child(variant: str, workdir: Path) -> None:
    imports = warm_imports(variant)
    result = VARIANTS[variant](workdir)
    result["import_cpu_seconds"] = imports
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def run_variants(names: list[str], workdir: Path, env: dict) -> dict:
    results = {}
    for variant in names:
        done = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--workdir", str(workdir)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant.removesuffix("-increment")] = json.loads(
            done.stdout.strip().splitlines()[-1]
        )
    return results


def print_table(title: str, results: dict, rows_label: str) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<10} {rows_label:>9} {'wall s':>8} {'CPU s':>8} {'rows/s (wall)':>14} "
        f"{'rows/s (CPU)':>13} {'peak RSS MB':>12}"
    )
    for variant, r in results.items():
        rows = r["flights_rows"]
        print(
            f"{variant:<10} {rows:>9,} {r['ops_seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
            f"{rows / r['ops_seconds']:>14,.0f} {rows / max(r['cpu_seconds'], 1e-9):>13,.0f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
    print(
        "imports before the timers (CPU s, once per process): "
        + ", ".join(f"{v} {r['import_cpu_seconds']:.2f}" for v, r in results.items())
    )
    platform = results["platform"]
    for other in ("floor", "dlt"):
        r = results[other]
        print(
            f"platform vs {other:<5}: {r['ops_seconds'] / platform['ops_seconds']:.2f}x the speed "
            f"(wall), {r['cpu_seconds'] / platform['cpu_seconds']:.2f}x (CPU)  [>1 = platform "
            "faster]"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=list(VARIANTS))
    parser.add_argument("--workdir")
    parser.add_argument("--keep", help="keep the working directory here")
    parser.add_argument("--skip-year", action="store_true", help="only the day's increment")
    args = parser.parse_args()
    if args.variant:
        child(args.variant, Path(args.workdir))
        return

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="ingest_bench_")).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    from simulator.flights import replay

    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    print(f"preparing the sources ({workdir})")
    increment_url = f"sqlite:///{workdir / 'source_inc.sqlite'}"
    replay.create_source(increment_url)
    replay.set_clock(increment_url, INCREMENT_FROM)
    if not args.skip_year:
        source_url = f"sqlite:///{workdir / 'source.sqlite'}"
        replay.create_source(source_url)
        replay.set_clock(source_url, dt.datetime(2014, 1, 2))

    env = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "MLOPS_DATA_DIR": str(workdir / "data"),
        "DLT_DATA_DIR": str(workdir / "dlt_home"),
    }
    if not args.skip_year:
        year = run_variants(["floor", "dlt", "platform"], workdir, env)
        print_table(
            "The whole 2013 year into an empty warehouse (flights, planes, airlines, airports)",
            year,
            "flights",
        )
        platform = year["platform"]
        print(
            f"platform weather: {platform['weather_rows']:,} rows over HTTP in "
            f"{platform['weather_seconds']:.2f} s "
            f"({platform['weather_rows'] / platform['weather_seconds']:,.0f} rows/s)"
        )
        print(
            "platform = Dagster materialization of landing (dlt) + audit (Great Expectations "
            "contracts) + publish (one transaction, merge on the key, quarantine, cursor)"
        )
        floor = year["floor"]
        wall, cpu = (floor[k] / platform[k] for k in ("ops_seconds", "cpu_seconds"))
        print(
            f"year vs the floor (target >= 1.00x): {wall:.2f}x wall, {cpu:.2f}x CPU "
            f"({'met' if wall >= 1 else 'not met'} on wall)"
        )
        print(f"load average after the year: {load_average()}")
    day = run_variants(["floor-increment", "dlt-increment", "platform-increment"], workdir, env)
    print_table(
        f"A day's increment after {INCREMENT_FROM:%Y-%m-%d} (changed flights since the newest "
        "in raw; platform wall = its steps' execution)",
        day,
        "changed",
    )
    platform = day["platform"]
    steps = platform["ops_seconds"]
    verdict = "met" if steps < INCREMENT_TARGET else "not met"
    print(
        f"platform increment: {platform['new_flights']:,} new flights, steps {steps:.2f} s "
        f"(target < {INCREMENT_TARGET} s: {verdict}; {platform['steps_cpu_seconds']:.2f} s CPU), "
        "whole Dagster run "
        f"{platform['run_seconds']:.2f} s wall / {platform['cpu_seconds']:.2f} s CPU"
    )
    print(f"load average at end: {load_average()}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
