"""Repeat the platform's day increment in one process, for profiles and A/B comparisons.

`make bench-ingest --skip-year` times one day after 45: too little to profile and one sample
to compare. This runs the same runs as its platform increment (`build_landing_assets(flights,
"flight_ops")` and `build_published_tables(flights, "flight_ops")` materialized together, one
Dagster instance) on `--days` consecutive days after the first 45 (untimed; `--start` moves
that first day later, for the state of a long history), and prints each
day's steps CPU (landing and publish apart) and their medians. The source, at the clock the
bench starts from, is made once in `--workdir` and copied for each call, so successive calls
(main's code, then a branch's: `PYTHONPATH=<other checkout>`) load the same days.

    python bench/increment_days.py --days 8 --workdir /tmp/incdays [--json out.json]

Under py-spy (`py-spy record -r 200 -o x.svg -- python bench/increment_days.py ...`) the first
45 days are in the profile too; `--settle` seconds in `_profile_marker` mark where the days
start (bench/profile_shares.py reads only the samples after it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ingest_bench as bench  # noqa: E402


def _prepared_source(workdir: Path, start: dt.datetime) -> Path:
    """The bench's increment source (released through `start`), made once per workdir and
    start."""
    from simulator.flights import replay

    made = workdir / f"source_inc_{start:%Y%m%d}.sqlite"
    if not made.exists():
        partial = workdir / f"source_inc_{start:%Y%m%d}.partial.sqlite"
        replay.create_source(f"sqlite:///{partial}")
        replay.set_clock(f"sqlite:///{partial}", start)
        partial.rename(made)
    return made


def _step_cpu_split(dg, assets, resources) -> tuple[float, dict[str, float]]:
    """One run: its steps' total CPU seconds and each step's."""
    instance = bench._instance()
    per_step: dict[str, float] = {}
    started: dict[str, float] = {}
    record = instance.handle_new_event

    def handle(event, **kwargs):
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        if kind == "STEP_START":
            started[event.step_key] = bench.cpu_seconds()
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            per_step[event.step_key] = bench.cpu_seconds() - started[event.step_key]
        return record(event, **kwargs)

    instance.handle_new_event = handle
    try:
        result = dg.materialize(
            assets, resources=resources, run_config=bench.QUIET, raise_on_error=False,
            instance=instance,
        )  # fmt: skip
    finally:
        del instance.handle_new_event
    assert not result.get_step_failure_events(), result.get_step_failure_events()
    return sum(per_step.values()), per_step


def _profile_marker(seconds: float) -> None:
    """Busy for `seconds`: in a py-spy profile (speedscope samples are in time order), the
    days' samples are those after this function's last one."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class GcTimer:
    """CPU seconds the cyclic GC spends, by generation, through `gc.callbacks` (a full
    collection of a long-lived process's heap costs a day's increment several times over)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds[info["generation"]] += time.process_time() - self._started
            self.counts[info["generation"]] += 1

    def take(self) -> dict:
        """The totals since the last call (and start again from zero)."""
        taken = {"gc_cpu": sum(self.seconds), "gc_full_cpu": self.seconds[2],
                 "gc_full": self.counts[2]}  # fmt: skip
        self.seconds, self.counts = [0.0, 0.0, 0.0], [0, 0, 0]
        return taken


def run(
    workdir: Path,
    days: int,
    settle: float,
    keep: bool = False,
    freeze: bool = False,
    start: dt.datetime = bench.INCREMENT_FROM,
) -> dict:
    from mlops_platform.contracts.checks import build_published_tables
    from mlops_platform.ingestion.assets import build_landing_assets
    from simulator.flights import replay

    run_dir = workdir / f"run_{os.getpid()}"
    run_dir.mkdir(parents=True)
    source = run_dir / "source.sqlite"
    shutil.copy(_prepared_source(workdir, start), source)
    bench.warm_imports("platform")
    dg, flights, warehouse, resources = bench._platform(run_dir, source, "platform.duckdb")
    assets = [
        build_landing_assets(flights, "flight_ops"),
        build_published_tables(flights, "flight_ops"),
    ]
    _step_cpu_split(dg, assets, resources)  # the days through `start` (untimed)
    if freeze:
        gc.collect()
        gc.freeze()
    _profile_marker(settle)
    timer = GcTimer()
    out = []
    for day in range(1, days + 1):
        replay.set_clock(f"sqlite:///{source}", start + dt.timedelta(days=day))
        before = bench._raw_count(warehouse)
        total, steps = _step_cpu_split(dg, assets, resources)
        new = bench._raw_count(warehouse) - before
        out.append({"day": day, "steps_cpu": total, "new": new, **steps, **timer.take()})
        print(
            f"day {day}: steps {total:.3f} s CPU ("
            + ", ".join(f"{k} {v:.3f}" for k, v in steps.items())
            + f"), {new} new flights; GC {out[-1]['gc_cpu']:.3f} s CPU"
            + f" ({out[-1]['gc_full']} full: {out[-1]['gc_full_cpu']:.3f} s)",
            flush=True,
        )
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    keys = [k for k in out[0] if k not in ("day", "new", "gc_full")]
    medians = {k: statistics.median(d[k] for d in out) for k in keys}
    print("medians: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
    return {"days": out, "medians": medians, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--json", help="write the days and medians here")
    parser.add_argument("--settle", type=float, default=0.0)
    parser.add_argument("--keep", action="store_true", help="keep the run's warehouse and source")
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() after the first run (untimed)"
    )
    parser.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=bench.INCREMENT_FROM.date(),
        help="the days before it are loaded in one untimed run (a late start: a long history)",
    )
    args = parser.parse_args()
    workdir = Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        RUNTIME__DLTHUB_TELEMETRY="false",
        DO_NOT_TRACK="true",
        GX_ANALYTICS_ENABLED="false",
        MLOPS_DATA_DIR=str(workdir / f"data_{os.getpid()}"),
        DLT_DATA_DIR=str(workdir / f"dlt_home_{os.getpid()}"),
    )
    start = dt.datetime.combine(args.start, dt.time())
    result = run(workdir, args.days, args.settle, args.keep, args.freeze, start)
    print(f"load average: {bench.load_average()}")
    if args.keep:
        print(f"kept: {workdir / f'run_{os.getpid()}'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
