"""Repeat the flights domain's weather landing (`weather_feed_tables`: dlt `rest_api` over the
loopback weather feed) on consecutive days, for profiles and A/B comparisons.

Like bench/increment_days.py (same prepared source, one Dagster instance per run), but the
weather feed's landing and publish, with each day's landing step CPU and wall seconds (the
year replay's history shows the step's wall time):

    python bench/weather_days.py --days 6 --workdir /tmp/weatherdays [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import increment_days  # noqa: E402
import ingest_bench as bench  # noqa: E402

STEP = "weather_feed_tables"


def _step(dg, assets, resources, allowed_failures=frozenset()) -> tuple[float, float]:
    """One run of the landing and its publish (which moves the cursor the next landing reads
    from): the landing step's CPU and wall seconds."""
    instance = bench._instance()
    marks: dict[str, tuple[float, float]] = {}
    record = instance.handle_new_event

    def handle(event, **kwargs):
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        if kind in ("STEP_START", "STEP_SUCCESS") and event.step_key == STEP:
            marks[kind] = (bench.cpu_seconds(), time.perf_counter())
        return record(event, **kwargs)

    instance.handle_new_event = handle
    try:
        result = dg.materialize(
            assets, resources=resources, run_config=bench.QUIET, raise_on_error=False,
            instance=instance,
        )  # fmt: skip
    finally:
        del instance.handle_new_event
    failed = {e.step_key for e in result.get_step_failure_events()}
    assert failed <= allowed_failures, failed
    (cpu0, wall0), (cpu1, wall1) = marks["STEP_START"], marks["STEP_SUCCESS"]
    return cpu1 - cpu0, wall1 - wall0


def run(workdir: Path, days: int) -> dict:
    from mlops_platform.contracts.checks import build_published_tables
    from mlops_platform.ingestion.assets import build_landing_assets
    from simulator.flights import replay

    run_dir = workdir / f"run_{os.getpid()}"
    run_dir.mkdir(parents=True)
    source = run_dir / "source.sqlite"
    shutil.copy(increment_days._prepared_source(workdir), source)
    bench.warm_imports("platform")
    dg, flights, warehouse, resources = bench._platform(run_dir, source, "platform.duckdb")
    assets = [
        build_landing_assets(flights, "weather_feed"),
        build_published_tables(flights, "weather_feed"),
    ]
    # The first 45 days (untimed; their publish quarantines some of the history's rows, as in
    # bench/ingest_bench.py, and still moves the cursor).
    _step(dg, assets, resources, {"weather_feed_published"})
    out = []
    for day in range(1, days + 1):
        replay.set_clock(f"sqlite:///{source}", bench.INCREMENT_FROM + dt.timedelta(days=day))
        cpu, wall = _step(dg, assets, resources)
        out.append({"day": day, "cpu": cpu, "wall": wall})
        print(f"day {day}: weather_feed_tables {cpu:.3f} s CPU, {wall:.3f} s wall", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    medians = {k: statistics.median(d[k] for d in out) for k in ("cpu", "wall")}
    print(f"medians: {medians['cpu']:.3f} s CPU, {medians['wall']:.3f} s wall")
    return {"days": out, "medians": medians, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--json", help="write the days and medians here")
    args = parser.parse_args()
    workdir = Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        RUNTIME__DLTHUB_TELEMETRY="false",
        DO_NOT_TRACK="true",
        MLOPS_DATA_DIR=str(workdir / f"data_{os.getpid()}"),
        DLT_DATA_DIR=str(workdir / f"dlt_home_{os.getpid()}"),
    )
    result = run(workdir, args.days)
    print(f"load average: {bench.load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
