"""Run the platform's own sensors and jobs in process, as the daemon would, one replay cycle at
a time (a day, or a month: the domain's partition cadence, see simulator/domains.py).

Each cycle: the source's clock advances one period; the `daily_cycle_<spec>` sensor is ticked
and the run it asks for (`daily_<spec>` for the period just closed: ingest, features, score,
monitor) is executed, again if it failed and the sensor retries it; then the `retrain_<spec>`
sensor is ticked, and a retraining run (features -> train -> gate -> promote) is executed if it
asks for one.

Runs are created on the persistent instance from the workspace's code location, with the tags
and run keys the sensors set, and executed in this process (replay/runs.py): the Dagster UI shows
the same history a daemon would have left (job pages, the Overview timeline, re-execution), and a
run key is never run twice.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from simulator.domains import SimulatedDomain
from simulator.replay.runs import (
    CodeLocation,
    SqliteAnchors,
    execute_with_origin,
    workspace_location,
)

#: Console logs of the runs silenced: the driver prints a summary; the full event log of
#: every run is in the Dagster UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunSummary:
    job: str
    run_id: str
    success: bool
    seconds: float
    partition: str | None
    tags: dict[str, str]
    checks: dict[str, dg.AssetCheckEvaluation] = field(default_factory=dict)
    materializations: dict[str, dict] = field(default_factory=dict)
    #: The first failed step and its error, if any.
    error: str = ""


@dataclass
class Day:
    day: dt.date
    runs: list[RunSummary] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def run_of(self, job_prefix: str) -> RunSummary | None:
        return next((r for r in self.runs if r.job.startswith(job_prefix)), None)


def summarise(result, job: str, seconds: float, partition, tags) -> RunSummary:
    """What a run did, through the documented accessors of its execution result."""
    summary = RunSummary(job, result.run_id, result.success, seconds, partition, dict(tags))
    # From the events themselves: a graph asset's materialization comes from an inner op
    # (`<spec>/scores` from its summary step), which node look-ups by top-level name miss.
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        summary.materializations[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    for evaluation in result.get_asset_check_evaluations():
        summary.checks[evaluation.asset_key.to_user_string()] = evaluation
    for event in result.get_step_failure_events()[:1]:
        failure = result.failure_data_for_node(event.node_name)
        error = failure.error if failure else None
        while error is not None and error.cause is not None:  # the user code's own exception
            error = error.cause
        summary.error = f"{event.step_key}: {error.message.strip() if error else 'failed'}"
    return summary


def interrupted(result) -> bool:
    """Whether the run ended because this process was interrupted: Dagster catches the
    KeyboardInterrupt of an in-process run and records the run as failed with
    `UNEXPECTED_TERMINATION` (no termination was requested through the instance)."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.RUN_FAILURE:
            data = event.job_failure_data
            reason = getattr(data, "failure_reason", None)
            return getattr(reason, "value", None) == "UNEXPECTED_TERMINATION"
    return False


def freeze_survivors() -> None:
    """Collect the run's garbage, then move everything still alive out of the cyclic GC's sight
    (`gc.freeze`).

    A replay is one long-lived process: its heap (Dagster, dlt, Great Expectations, then
    scikit-learn, MLflow and Evidently as the first training and drift check import them)
    grows to ~1.1M objects, and every full collection walks all of them: 0.45-0.70 s of CPU
    every 3-5 cycles of ~1.5 s (gc.callbacks timings of a 10-day quickstart). What is alive
    between two runs is the process's own (modules, caches, the instance), so the collections
    need only look at what later runs create. The collection here walks only what is not yet
    frozen: what the run left behind. Freezing once after the first run is not enough: the
    modules imported by later runs (training, drift) stay in the full collections' way, and
    with few objects counted long-lived they come more often (a 10-day quickstart loop: no
    freeze 3 full collections, 2.0 s; frozen once 8, 2.3 s; frozen after every run 19, 0.5 s).

    A frozen object that later becomes cyclic garbage (yesterday's cache entry, say) is never
    collected while frozen, so every `RECLAIM_EVERY` freezes the frozen objects are handed back
    to the collector for one full collection: memory stays bounded over a year's replay at the
    cost of one full collection a month of days."""
    global _freezes
    _freezes += 1
    if _freezes % RECLAIM_EVERY == 0:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


#: Freezes between two full collections that include the frozen objects (see `freeze_survivors`).
RECLAIM_EVERY = 30
_freezes = 0


class Driver:
    """Ticks sensors and executes what they request, on `instance`, with `defs`; `source_url`
    is the database of `sim`'s source system, whose replay clock it moves."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        defs: dg.Definitions,
        source_url: str,
        specs,
        sim: SimulatedDomain,
        location: CodeLocation | None = None,
        freeze_between_runs: bool = False,
    ):
        self.instance = instance
        #: Where the runs say they come from (default: the code location `make dev` serves).
        self.location = location or workspace_location()
        self.defs = defs
        self.source_url = source_url
        self.specs = list(specs)
        self.sim = sim
        self.cursors: dict[str, str | None] = {}
        self.resources = dict(defs.resources or {})
        #: The local instance's SQLite files held open while runs write them (runs.py).
        self.anchors = SqliteAnchors(instance)
        #: The local warehouse held open between runs (`hold_warehouse`).
        self._warehouse = None
        #: `freeze_survivors` after every run: for a process that is the replay and nothing else
        #: (frozen objects are never collected, whoever else shares the process).
        self.freeze_between_runs = freeze_between_runs

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the instance's files the runs held (`SqliteAnchors.close`) and of the
        warehouse (`hold_warehouse`)."""
        self.anchors.close()
        warehouse, self._warehouse = self._warehouse, None
        if warehouse is not None:
            warehouse.close()  # the last connection: DuckDB checkpoints the file

    def hold_warehouse(self) -> None:
        """Keep one idle connection open on the local (DuckDB) warehouse until `close`.

        A run's warehouse resource holds the file while the run's steps use it
        (DuckDBStore.anchor): it opens the database (its catalog read, its WAL replayed) when
        the run starts, and its close at the run's end is the last one, which checkpoints the
        file: ~30 and ~90 ms of CPU a daily run (cProfile, load 6). With the database also
        open here, the run's open finds it open in this process and its close is not the
        last: DuckDB checkpoints when its WAL reaches its `checkpoint_threshold` instead, and
        at `close`. Commits are as durable as before (the WAL). The file stays locked by this
        process from the first run to `close`, not only while runs execute: another process
        that opens it meanwhile (a CLI, the serving API's spooled writes) is refused until the
        replay ends (after its bounded wait, as during a run) instead of slipping in between
        two runs. A warehouse that is not a DuckDB
        file, or that another process holds, is not held."""
        from mlops_platform.warehouse.duckdb import DuckDBStore

        store = self.resources.get("warehouse")
        if self._warehouse is not None or not isinstance(store, DuckDBStore):
            return
        import duckdb

        Path(store.database_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._warehouse = duckdb.connect(store.database_path)
        except duckdb.Error:
            # Not held, then: the run opens the file itself, and a lock conflict or any other
            # error (a damaged file) is the run's to meet and record as its step's failure.
            self._warehouse = None

    # -- the replay clock ----------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.sim.now(self.source_url)

    def advance(self, days: float):
        return self.sim.advance(self.source_url, days)

    def set_clock(self, now: dt.datetime):
        return self.sim.set_clock(self.source_url, now)

    # -- one run ------------------------------------------------------------------------------
    def execute(
        self, job: str, partition: str | None = None, tags: dict[str, str] | None = None
    ) -> RunSummary:
        started = time.perf_counter()
        self.hold_warehouse()
        with self.anchors.run() as run_id:
            result = execute_with_origin(
                self.defs.resolve_job_def(job),
                self.instance,
                self.location,
                partition_key=partition,
                tags=tags or {},
                run_config=QUIET,
                run_id=run_id,
            )
        if interrupted(result):
            # Dagster caught the interrupt (Ctrl-C, or SIGTERM once it handles it as SIGINT)
            # and failed the run: the replay stops here, as it would between two runs,
            # instead of logging a failed day and going on.
            raise KeyboardInterrupt(f"{job} run {result.run_id} was interrupted")
        if self.freeze_between_runs:
            freeze_survivors()
        return summarise(result, job, time.perf_counter() - started, partition, tags or {})

    def _already_ran(self, run_key: str | None) -> bool:
        if not run_key:
            return False
        return bool(
            self.instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1
            )
        )

    def tick(self, sensor: dg.SensorDefinition) -> tuple[list[RunSummary], str | None]:
        """One evaluation of `sensor`; executes its run requests. Returns (runs, skip reason)."""
        # Only the resources the sensor asks for: a daemon tick does not start the weather
        # feed or open the warehouse for a sensor that reads neither.
        needed = {k: v for k, v in self.resources.items() if k in sensor.required_resource_keys}
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor.name),
            resources=needed,
            sensor_name=sensor.name,
            definitions=self.defs,
        ) as context:
            data = sensor.evaluate_tick(context)
        self.cursors[sensor.name] = data.cursor
        runs = []
        for request in data.run_requests or []:
            if self._already_ran(request.run_key):
                continue
            job = request.job_name or sensor.job_name
            tags = {**request.tags, "dagster/sensor_name": sensor.name, "mlops/replay": "loop"}
            if request.run_key:
                tags["dagster/run_key"] = request.run_key
            runs.append(self.execute(job, request.partition_key, tags))
        return runs, data.skip_message

    # -- one replay cycle ---------------------------------------------------------------------
    def run_cycle(self, until: dt.date | None = None) -> Day:
        """Advance the clock one cycle period (never past `until`) and run what the sensors
        ask for, in order."""
        target = self.sim.next_cycle(self.now())
        if until is not None:
            target = min(target, dt.datetime.combine(until, dt.time()))
        day = Day(self.set_clock(target).now.date())
        for spec in self.specs:
            cycle = self.defs.resolve_sensor_def(f"daily_cycle_{spec.name}")
            # The sensor retries a failed day and gives up after 3 attempts (its rule), so this
            # ends.
            for _ in range(5):
                runs, skipped = self.tick(cycle)
                day.runs += runs
                if not runs:
                    day.skipped.append(skipped or "")
                    break
            runs, skipped = self.tick(self.defs.resolve_sensor_def(f"retrain_{spec.name}"))
            day.runs += runs
            if skipped:
                day.skipped.append(skipped)
        return day
