"""Benchmark: load the whole 2013 year from the source database into an empty warehouse.

Three variants, each in its own process so peak memory is its own:
  platform  the `landing/*` assets (dlt into `landing`) and the `raw/*` assets (contract audit and
            one-transaction publish) materialized by Dagster; ops time includes the publish
  dlt-append  the same dlt source with plain append (no incremental, no merge): dlt's best case
  floor     pandas `read_sql` of each table + DuckDB `CREATE TABLE AS` (no dlt at all)

Prints rows/s for flights, total time, peak RSS, and the floor/platform ratio.
Usage: python bench/ingest_bench.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_platform(workdir: Path) -> dict:
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from mlops_platform.clock import TableClock
    from mlops_platform.contracts.checks import published_tables
    from mlops_platform.domains import load_domain
    from mlops_platform.ingestion.assets import build_landing_assets
    from mlops_platform.ingestion.resources import source_resources
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    flights = load_domain("flights")
    url = f"sqlite:///{workdir / 'source.sqlite'}"
    warehouse = DuckDBWarehouse(
        path=str(workdir / "platform.duckdb"), pipelines_dir=str(workdir / "dlt")
    )
    resources = {
        "dlt": DagsterDltResource(),
        **source_resources(flights, urls={"flight_ops": url}),
        "clock": TableClock(url=url),
        "warehouse": warehouse,
    }
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    timings = {}
    steps = (
        ("flight_ops", [build_landing_assets(flights, "flight_ops")]),
        ("weather", [build_landing_assets(flights, "weather_feed")]),
        ("publish", published_tables(flights)),
    )
    for name, assets in steps:
        started = time.perf_counter()
        result = dg.materialize(assets, resources=resources, run_config=quiet, raise_on_error=False)
        timings[name] = time.perf_counter() - started
        # The year's weather holds one impossible reading (a 1,048 mph wind on Feb 12): its
        # blocking contract stops raw.weather, as it must; everything else has to succeed.
        failed = {e.step_key for e in result.get_step_failure_events()}
        assert failed <= {"raw__weather"}, failed
    flights = int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    weather = int(warehouse.query("SELECT count(*) AS n FROM raw.weather")["n"].iloc[0])
    assert flights == FLIGHTS, flights
    return {
        "flights_rows": flights,
        "weather_rows": weather,
        "ops_seconds": timings["flight_ops"] + timings["publish"],
        "weather_seconds": timings["weather"],
    }


def run_dlt_append(workdir: Path) -> dict:
    from mlops_platform.domains import load_domain
    from mlops_platform.ingestion.sources import sql_source
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    warehouse = DuckDBWarehouse(
        path=str(workdir / "append.duckdb"), pipelines_dir=str(workdir / "dlt_append")
    )
    source = sql_source(
        load_domain("flights"), "flight_ops", f"sqlite:///{workdir / 'source.sqlite'}"
    )
    for table in TABLES:
        source.resources[table].apply_hints(write_disposition="append", incremental=None)
    started = time.perf_counter()
    warehouse.dlt_pipeline("append_bench").run(source)
    elapsed = time.perf_counter() - started
    flights = int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    return {"flights_rows": flights, "ops_seconds": elapsed}


def run_floor(workdir: Path) -> dict:
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{workdir / 'source.sqlite'}")
    started = time.perf_counter()
    with duckdb.connect(str(workdir / "floor.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw")
        for table in TABLES:
            frame = pd.read_sql_table(table, engine)  # noqa: F841 - read by DuckDB below
            conn.execute(f"CREATE TABLE raw.{table} AS SELECT * FROM frame")
        flights = conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0]
    elapsed = time.perf_counter() - started
    return {"flights_rows": flights, "ops_seconds": elapsed}


VARIANTS = {"platform": run_platform, "dlt-append": run_dlt_append, "floor": run_floor}


def child(variant: str, workdir: Path) -> None:
    result = VARIANTS[variant](workdir)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=list(VARIANTS))
    parser.add_argument("--workdir")
    parser.add_argument("--keep", help="keep the working directory here")
    args = parser.parse_args()
    if args.variant:
        child(args.variant, Path(args.workdir))
        return

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="ingest_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    from simulator.flights import replay

    source_url = f"sqlite:///{workdir / 'source.sqlite'}"
    print(f"preparing the source: whole year released and landed ({workdir})")
    replay.create_source(source_url)
    replay.set_clock(source_url, dt.datetime(2014, 1, 2))

    env = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "MLOPS_DATA_DIR": str(workdir / "data"),
        "DLT_DATA_DIR": str(workdir / "dlt_home"),
    }
    results = {}
    for variant in ("floor", "dlt-append", "platform"):
        done = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--workdir", str(workdir)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    print(
        f"\n{'variant':<12} {'flights':>9} {'seconds':>8} {'flights rows/s':>15} "
        f"{'peak RSS MB':>12}"
    )
    for variant, r in results.items():
        rate = r["flights_rows"] / r["ops_seconds"]
        r["rate"] = rate
        print(
            f"{variant:<12} {r['flights_rows']:>9,} {r['ops_seconds']:>8.2f} {rate:>15,.0f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
    platform, floor = results["platform"], results["floor"]
    ratio = floor["rate"] / platform["rate"]
    print(
        f"\nplatform weather: {platform['weather_rows']:,} rows over HTTP in "
        f"{platform['weather_seconds']:.2f} s "
        f"({platform['weather_rows'] / platform['weather_seconds']:,.0f} rows/s)"
    )
    print(
        "platform = Dagster materialization of the ops tables (flights + planes, airlines, "
        "airports), incremental + merge"
    )
    print(
        f"floor/platform ratio: {ratio:.2f}x (target <= 2.0x); platform flights rows/s "
        f"{platform['rate']:,.0f} (target >= 60,000)"
    )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
