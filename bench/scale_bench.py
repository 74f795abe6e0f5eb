"""Benchmark: cost as the work grows, on the production profile (PostgreSQL warehouse).

1. The flights year at 1x, 4x, 16x (`--scales`): replicas of the year with distinct keys
   (flight number + 10000*i, tail number suffixed `-r<i>`, planes replicated to match). Each
   phase runs in its own process, so its peak memory (VmHWM) is its own: ingest (dlt into
   PostgreSQL), features, training (MLflow-tracked), batch scoring of the year day by day.
   Prints rows/s, peak MB, and the growth exponent b of time ~ rows^b between scales.
   Targets: b <= 1.1 for ingest, features and scoring; scoring's peak memory flat in rows.
2. A backfill of 28 daily scoring partitions on the production stack (Procfile processes,
   dagster-celery over RabbitMQ) with one warehouse worker and with two, on January at 16x
   (`--backfill-scale`; at 1x a day is ~900 flights and the run's start dominates): one run,
   its range cut into chunk steps the workers share (scoring/assets.py). `--backfill-rounds`
   pairs of backfills, back to back, which one goes first alternating: one pair's ratio moved
   from 1.47x to 1.77x between two idle runs (the one-worker chunks took 31.4 s, then 37.1 s),
   so the median of the rounds is the figure. Target: >= 1.6x from the run's creation.

Databases `<prefix>_<k>x` and `<prefix>_stack_*` on MLOPS_BENCH_POSTGRES's server (default
postgresql://postgres@127.0.0.1:5432/mlops_bench) are created and dropped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("MLOPS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/mlops_bench")
PHASES = ("ingest", "features", "training", "scoring")
SPEC = "flight_delay"
YEAR_END = dt.datetime(2014, 1, 1)
FLIGHT_COLUMNS = (
    "year, month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, "
    "arr_delay, carrier, {flight}, {tailnum}, origin, dest, air_time, distance, hour, minute, "
    "time_hour, status, updated_at"
)


def database_url(scale: int) -> str:
    url = sa.engine.make_url(SERVER)
    return url.set(database=f"{url.database}_{scale}x").render_as_string(hide_password=False)


def source_url(scale: int) -> str:
    return database_url(scale) + "?options=-csearch_path%3Dflight_ops"


def _admin():
    url = sa.engine.make_url(SERVER).set(database="postgres")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def recreate_database(name: str) -> None:
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(name: str) -> None:
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def prepare_source(scale: int) -> int:
    """The year released (clock at its end), replicated `scale` times with distinct keys."""
    from simulator.flights import replay

    recreate_database(sa.engine.make_url(database_url(scale)).database)
    engine = sa.create_engine(database_url(scale))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA flight_ops"))
    engine.dispose()
    replay.create_source(source_url(scale))
    replay.set_clock(source_url(scale), YEAR_END)
    return replicate_flights(database_url(scale), "flight_ops", scale)


def replicate_flights(url: str, schema: str, scale: int) -> int:
    """Copies 2..`scale` of the source's original flights and planes, with distinct keys
    (flight number + 10000*i, tail number suffixed `-r<i>`); returns the flights now there."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"SET search_path TO {schema}"))
        plane_columns = [
            c
            for c in conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    ":schema AND table_name = 'planes' ORDER BY ordinal_position"
                ),
                {"schema": schema},
            ).scalars()
            if c != "tailnum"
        ]
        target = FLIGHT_COLUMNS.format(flight="flight", tailnum="tailnum")
        for i in range(1, scale):
            copy = FLIGHT_COLUMNS.format(
                flight=f"flight + {10000 * i}", tailnum=f"tailnum || '-r{i}'"
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO flights ({target}) SELECT {copy} FROM flights "
                    "WHERE flight < 10000"  # the original year only
                )
            )
            others = ", ".join(plane_columns)
            conn.execute(
                sa.text(
                    f"INSERT INTO planes (tailnum, {others}) SELECT tailnum || '-r{i}', {others} "
                    "FROM planes WHERE tailnum NOT LIKE '%-r%'"
                )
            )
        rows = conn.execute(sa.text("SELECT count(*) FROM flights")).scalar()
    engine.dispose()
    return int(rows)


# -- phases (each in its own process) --------------------------------------------------------
def _warehouse(scale: int, workdir: Path):
    from mlops_platform.warehouse.resources import PostgresWarehouse

    return PostgresWarehouse(url=database_url(scale), pipelines_dir=str(workdir / "dlt"))


def _registry(workdir: Path):
    from mlops_platform.registry.store import ModelRegistry

    return ModelRegistry(f"sqlite:///{workdir / 'mlflow.db'}", str(workdir / "artifacts"))


def run_phase(phase: str, scale: int, workdir: Path) -> int:
    """Do one phase; returns the rows it processed."""
    from mlops_platform.specs import load_spec

    spec = load_spec(SPEC)
    warehouse = _warehouse(scale, workdir)
    if phase == "ingest":
        from mlops_platform.domains import load_domain
        from mlops_platform.ingestion.sources import rest_source, sql_source
        from simulator.flights.weather_feed import FeedServer

        fmt = warehouse.loader_file_format
        warehouse.dlt_pipeline("flight_ops").run(
            sql_source(load_domain("flights"), "flight_ops", source_url(scale)),
            loader_file_format=fmt,
        )
        with FeedServer(source_url(scale)) as feed:
            warehouse.dlt_pipeline("weather_feed").run(
                rest_source(load_domain("flights"), "weather_feed", feed.url),
                loader_file_format=fmt,
            )
        return int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    if phase == "features":  # a full rebuild, as the asset does it: span by span
        from mlops_platform.features.build import write_features

        return write_features(warehouse, spec)
    if phase == "training":
        from mlops_platform.training.params import Hyperparameters
        from mlops_platform.training.tracking import train_and_register

        features = warehouse.read_table("features", spec.name)
        registry = _registry(workdir)
        train_and_register(
            spec, features, registry, warehouse, Hyperparameters().as_dict(), "scale-bench"
        )
        return len(features)
    if phase == "scoring":  # as the scores asset's steps do: chunks of at most 7 days
        from mlops_platform.scoring.assets import chunks
        from mlops_platform.scoring.score import score_range

        registry = _registry(workdir)
        version = registry.latest_version(spec.name)  # the one the training phase registered
        model = registry.load_verified(spec.name, version, signed=False)  # not gated here
        days = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(365)]
        rows = 0
        for chunk in chunks(days):
            end = chunk[-1] + dt.timedelta(days=1)
            rows += score_range(warehouse, model, version, spec, chunk[0], end)[0]
        return rows
    raise ValueError(phase)


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(phase: str, scale: int, workdir: Path) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--scale", str(scale)]
    command += ["--workdir", str(workdir)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "RUNTIME__LOG_LEVEL": "WARNING"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"{phase} at {scale}x failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(small: dict, large: dict, measure: str = "seconds") -> float:
    return math.log(large[measure] / small[measure]) / math.log(large["rows"] / small["rows"])


def scale_table(scales: list[int]) -> dict:
    results: dict[int, dict[str, dict]] = {}
    for scale in scales:
        workdir = Path(tempfile.mkdtemp(prefix=f"scale_{scale}x_"))
        started = time.perf_counter()
        flights = prepare_source(scale)
        print(
            f"{scale}x: {flights:,} flights in the source ({time.perf_counter() - started:.0f} s)"
        )
        results[scale] = {}
        for phase in PHASES:
            results[scale][phase] = measure(phase, scale, workdir)
            r = results[scale][phase]
            print(
                f"  {phase:9} {r['rows']:>10,} rows {r['seconds']:8.1f} s "
                f"({r['cpu_seconds']:7.1f} s CPU) {r['rows'] / r['seconds']:>10,.0f} rows/s  "
                f"peak {r['peak_mb']:7.0f} MB  load {r['load']:.1f}",
                flush=True,
            )
        drop_database(sa.engine.make_url(database_url(scale)).database)
    header = " | ".join(f"{s}x rows/s | {s}x peak MB" for s in scales)
    print(f"\n| phase | {header} | b (wall) | b (CPU) |")
    print("| --- |" + " --- | --- |" * len(scales) + " --- | --- |")
    for phase in PHASES:
        cells = [
            f"{results[s][phase]['rows'] / results[s][phase]['seconds']:,.0f} | "
            f"{results[s][phase]['peak_mb']:,.0f}"
            for s in scales
        ]
        small, large = results[scales[0]][phase], results[scales[-1]][phase]
        target = " (target <= 1.1)" if phase != "training" else ""
        print(
            f"| {phase} | " + " | ".join(cells) + f" | {exponent(small, large):.2f}{target} | "
            f"{exponent(small, large, 'cpu_seconds'):.2f} |"
        )
    loads = [results[s][p]["load"] for s in scales for p in PHASES]
    print(
        f"b: time ~ rows^b between {scales[0]}x and {scales[-1]}x; wall and the phase process's "
        f"own CPU (not PostgreSQL's); load average at the phases' ends {min(loads):.1f}-"
        f"{max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    return results


# -- backfill on the stack ---------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        todo += children.get(current, [])
    return total


def cpu_by_process(stack) -> dict[str, float]:
    """The stack's processes, and the PostgreSQL server (its postmaster with every backend,
    live or ended: the warehouse's reads and writes, Dagster's and MLflow's stores; any other
    client of the server counts too, so measure on an otherwise idle machine)."""
    used = {
        name: _cpu_seconds(process.pid)
        for name, process in stack.supervisor.processes.items()
        if process.poll() is None
    }
    postmaster = _postmaster()
    if postmaster is not None:
        used["postgresql"] = _cpu_seconds(postmaster)
    return used


def _postmaster() -> int | None:
    """The main process of the PostgreSQL server the bench uses, if it runs on this machine
    (the parent of a backend of ours)."""
    engine = sa.create_engine(sa.engine.make_url(SERVER).set(database="postgres"))
    try:
        with engine.connect() as conn:
            backend = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    finally:
        engine.dispose()
    try:
        stat = Path(f"/proc/{backend}/stat").read_text()
    except OSError:  # a server on another host
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def run_profile(stack, run_id: str) -> dict[str, float]:
    """Where a backfill run's time went: its launch, and its steps (each day a step)."""
    marks = {"created": stack.instance.get_run_record_by_id(run_id).create_timestamp.timestamp()}
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in stack.events(run_id):
        kind, step = entry.dagster_event.event_type_value, entry.dagster_event.step_key
        marks.setdefault(kind, entry.timestamp)
        if kind == "STEP_START":
            starts.setdefault(step, entry.timestamp)
        elif kind == "STEP_SUCCESS":
            ends[step] = entry.timestamp
    spans = [ends[k] - starts[k] for k in starts if k in ends]
    nan = float("nan")

    def level(name: str, of: dict[str, float], pick) -> float:
        found = [t for k, t in of.items() if name in k]
        return pick(found) if found else nan

    # The waits between the graph's levels (plan -> chunks -> summary -> the run's end): the
    # run's loop noticing a step's end, and the next step's dispatch and start on a worker.
    chunk_first, chunk_last = level("_score[", starts, min), level("_score[", ends, max)
    return {  # Dagster still names a run's events PIPELINE_*
        "queued": marks.get("PIPELINE_STARTING", nan) - marks["created"],
        "run process start": marks.get("PIPELINE_START", nan) - marks.get("PIPELINE_STARTING", nan),
        "steps": len(spans),
        "step median": sorted(spans)[len(spans) // 2] if spans else float("nan"),
        "step sum": sum(spans),
        "first step after": min(starts.values(), default=nan) - marks["created"],
        "plan": level("_plan", ends, max) - level("_plan", starts, min),
        "plan->chunks": chunk_first - level("_plan", ends, max),
        "chunks": chunk_last - chunk_first,
        "chunks->summary": level("_summary", starts, min) - chunk_last,
        "summary": level("_summary", ends, max) - level("_summary", starts, min),
        "summary->end": marks.get("PIPELINE_SUCCESS", nan) - level("_summary", ends, max),
        "run": marks.get("PIPELINE_SUCCESS", nan) - marks.get("PIPELINE_START", nan),
    }


def backfill_seconds(stack, days: list[str], workers: int) -> tuple[float, float]:
    """An asset backfill of the scores over `days` (as the UI launches one), until its last
    run ends: seconds from the request, and from the first run's creation; prints where the
    time went and the CPU each process used."""
    import dagster as dg

    cpu_before = cpu_by_process(stack)
    vacuums_before = _vacuums(stack)
    load_before = os.getloadavg()[0]
    started = time.time()
    backfill_id = stack.backfill([SPEC, "scores"], days)
    while True:
        runs = stack.backfill_runs(backfill_id)
        backfill = stack.instance.get_backfill(backfill_id)
        if runs and all(r.is_finished for r in runs) and backfill.status.value != "REQUESTED":
            break
        time.sleep(1)
    failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    if failed:
        sys.exit(f"backfill runs failed: {failed}")
    records = [stack.instance.get_run_record_by_id(r.run_id) for r in runs]
    seconds = max(r.end_time for r in records) - started
    first_created = min(r.create_timestamp.timestamp() for r in records)
    cpu_after = cpu_by_process(stack)
    profiles = [run_profile(stack, r.run_id) for r in runs]
    busy = sum(p["step sum"] for p in profiles) / (workers * seconds)
    print(
        f"  {seconds:.0f} s from the request to the last run's end (load average "
        f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}); the daemon picked the backfill up "
        f"after {first_created - started:.0f} s; {len(runs)} run(s): "
        + "; ".join(", ".join(f"{k} {v:.1f}" for k, v in p.items()) for p in profiles)
        + f"; workers busy {busy:.0%} of the time",
        flush=True,
    )
    used = {n: cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after}
    print(
        "  CPU s by process: " + ", ".join(f"{n} {v:.0f}" for n, v in used.items() if v >= 1),
        flush=True,
    )
    vacuums = {t: n - vacuums_before.get(t, 0) for t, n in _vacuums(stack).items()}
    print(
        "  PostgreSQL's autovacuum/autoanalyze passes during it: "
        + (", ".join(f"{t} {n}" for t, n in vacuums.items() if n) or "none"),
        flush=True,
    )
    return seconds, max(r.end_time for r in records) - first_created


def _vacuums(stack) -> dict[str, int]:
    """Autovacuum and autoanalyze passes so far on the warehouse's features and scores tables
    (a chunk's replace leaves its old rows dead, and the server cleans them on its own time)."""
    import sqlalchemy as sa

    engine = sa.create_engine(stack.config.mlops_warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT schemaname || '.' || relname, autovacuum_count + autoanalyze_count "
                    "FROM pg_stat_user_tables WHERE schemaname IN ('features', 'scores')"
                )
            ).all()
    finally:
        engine.dispose()
    return {name: int(count) for name, count in rows}


def _warehouse_consumer(stack, prefix: str):
    """A function that stops (`cancel_consumer`) or resumes (`add_consumer`) the `warehouse`
    queue on the Celery worker whose name starts with `prefix`, once it has answered."""
    from celery import Celery

    from mlops_platform.deploy.queues import WAREHOUSE_QUEUE

    app = Celery(broker=stack.config.mlops_celery_broker)
    nodes = [name for reply in app.control.ping(timeout=5) or [] for name in reply]
    node = next(n for n in nodes if n.startswith(prefix))

    def control(action: str) -> None:
        replies = getattr(app.control, action)(WAREHOUSE_QUEUE, destination=[node], reply=True)
        if not replies:
            sys.exit(f"{node} did not answer {action}")

    return control


def backfill_comparison(days_count: int = 28, scale: int = 16, rounds: int = 3) -> None:
    os.environ["MLOPS_TEST_POSTGRES"] = SERVER
    sys.path.insert(0, str(ROOT))  # the stack helper the tests use
    from mlops_platform_tests.deploy_stack import start_stack, stop_stack
    from simulator.flights import replay
    from simulator.stack import SOURCE_SCHEMA

    stack = start_stack(Path(tempfile.mkdtemp(prefix="scale_stack_")))
    try:
        # January: the weather contract rightly quarantines EWR's 1,048 mph wind of Feb 12
        # (and, blocking, stops the run), so the backfill stays before it.
        replay.set_clock(stack.config.mlops_source_url, dt.datetime(2013, 2, 1))
        # The source holds the flights released up to its clock: January, then `scale` times.
        flights = replicate_flights(stack.config.mlops_warehouse_url, SOURCE_SCHEMA, scale)
        print(f"the stack's source: January 2013 at {scale}x, {flights:,} flights", flush=True)
        for job in ("ingest", f"train_{SPEC}"):
            run_id = stack.launch(job)
            if stack.wait_run(run_id, timeout=900) != "SUCCESS":
                sys.exit(f"{job} failed: {stack.failures(run_id)}")
        days = [str(dt.date(2013, 1, 2) + dt.timedelta(days=i)) for i in range(days_count)]
        # A first backfill over the same days with both workers: every worker has imported
        # the code location and loaded the model, PostgreSQL's cache holds the features, and
        # each measured backfill replaces the same rows. Then warehouse_2 stops taking tasks
        # (Celery's cancel_consumer: alive and warm) for the one-worker run, and resumes.
        print(f"warm-up backfill of {days_count} partitions at {scale}x, 2 workers:", flush=True)
        backfill_seconds(stack, days, workers=2)
        second = _warehouse_consumer(stack, "warehouse_2@")
        measured: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for round_ in range(rounds):
            # Which goes first alternates: a drift of the machine (a neighbour on the host,
            # PostgreSQL's cache) favours neither. One worker: warehouse_2 stops taking tasks
            # (Celery's cancel_consumer: alive and warm), then resumes.
            for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                print(
                    f"round {round_ + 1}: backfill of {days_count} partitions at {scale}x, "
                    f"{workers} warehouse worker(s):",
                    flush=True,
                )
                if workers == 1:
                    second("cancel_consumer")
                measured[workers].append(backfill_seconds(stack, days, workers=workers))
                if workers == 1:
                    second("add_consumer")
    finally:
        stop_stack(stack, stack.database_names)
    print(
        f"\nbackfill of {days_count} scoring partitions at {scale}x, seconds from the request; "
        "from the run's creation (the daemon's backfill loop wakes every 30 s, so the wait "
        "before the run is 0-30 s whatever the workers):"
    )
    ratios = []
    for round_, (one, two) in enumerate(zip(measured[1], measured[2], strict=True), start=1):
        ratios.append(one[1] / two[1])
        print(
            f"  round {round_}: 1 worker {one[0]:.1f}; {one[1]:.1f}   2 workers {two[0]:.1f}; "
            f"{two[1]:.1f}   speed-up from the run's creation {ratios[-1]:.2f}x"
        )
    print(
        f"speed-up from the run's creation, median of {len(ratios)} rounds: "
        f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x; "
        "target >= 1.6x)"
    )


def _stop(*_) -> None:
    """Unwind once (a second SIGTERM, e.g. from `uv run` passing its own on, is ignored)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(143)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--phase", choices=PHASES)
    parser.add_argument("--scale", type=int)
    parser.add_argument("--workdir")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--only-backfill", action="store_true")
    parser.add_argument("--backfill-days", type=int, default=28)
    parser.add_argument("--backfill-scale", type=int, default=16)
    parser.add_argument("--backfill-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.backfill_rounds < 1:
        parser.error("--backfill-rounds must be at least 1")
    # A stop (SIGTERM) unwinds like Ctrl-C, so the stack's processes and databases are removed.
    signal.signal(signal.SIGTERM, _stop)
    if args.phase:  # a child process: one phase, its measurement as the last line
        started = time.perf_counter()
        rows = run_phase(args.phase, args.scale, Path(args.workdir))
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        load = os.getloadavg()[0]
        measured = {"rows": rows, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb()}
        print(json.dumps(measured | {"load": load}))
        return
    if not args.only_backfill:
        scale_table([int(s) for s in args.scales.split(",")])
    if not args.skip_backfill:
        backfill_comparison(args.backfill_days, args.backfill_scale, args.backfill_rounds)


if __name__ == "__main__":
    main()
