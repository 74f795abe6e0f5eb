"""Repeat the daily drift check (`monitoring.run.run_drift`, the drift asset's work) on
consecutive days in one process, for profiles and A/B comparisons.

`make bench-drift` times one day five times over; the replay's drift step sees a new window
every day against the same champion. This prepares once in `--workdir` (the 2013 source to
May 2, a Jan-Feb champion, every day from Mar 1 to Apr 30 batch-scored; untimed), then runs the
check for `--days` consecutive days from Mar 7 and prints each day's CPU and wall seconds, with
its Evidently computation (`compute_drift`) and its page (`save_report`) apart, and their
medians. Successive calls (main's code, then a branch's: `PYTHONPATH=<other checkout>`) check
the same days on the same data.

    python bench/drift_days.py --workdir /tmp/driftdays --days 20 [--json out.json]
        [--dump DIR]   # each day's asset metadata and page (ids aside), to diff two versions

The first day builds the reference's cached dataset, as the first check after a promotion
does; it is timed apart (`first`), not in the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

FIRST_DAY = dt.date(2013, 3, 7)  # the first full window: Mar 1 - Mar 7
LAST_SCORED = dt.date(2013, 4, 30)


def prepare(workdir: Path) -> None:
    """The state the checks read (made once per workdir; then copied for each call)."""
    from common import loaded_warehouse

    from mlops_platform.evaluation.run import run_gate
    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.registry.promotion import promote
    from mlops_platform.registry.store import ModelRegistry
    from mlops_platform.scoring.score import score_day
    from mlops_platform.specs import load_spec
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.tracking import train_and_register

    partial = workdir / "state"  # MLflow records its artifacts' absolute paths: made in place
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    os.environ["MLOPS_DATA_DIR"] = str(partial)
    warehouse = loaded_warehouse(partial, dt.datetime(2013, 5, 2))
    spec = load_spec("flight_delay")
    features = features_from_warehouse(warehouse, spec)
    warehouse.replace_table("features", spec.name, features)
    registry = ModelRegistry(f"sqlite:///{partial / 'mlflow.db'}", str(partial / "artifacts"))
    jan_feb = features[features["event_date"] < "2013-03-01"]
    version = train_and_register(
        spec, jan_feb, registry, warehouse, Hyperparameters().as_dict(), "bench"
    ).version
    if not run_gate(spec, jan_feb, registry).passed:
        raise SystemExit("the Jan-Feb champion failed its gate; nothing to monitor")
    promote(registry, warehouse, spec.name, version, reason="bench", actor="bench", run_id="b")
    model = registry.load_verified(spec.name, version)
    day = dt.date(2013, 3, 1)
    while day <= LAST_SCORED:
        where = f"CAST(event_date AS DATE) = DATE '{day}'"
        scored = score_day(
            model, version, warehouse.read_table("features", spec.name, where), day, spec
        )
        warehouse.replace_rows("scores", spec.name, scored, where=where)
        day += dt.timedelta(days=1)
    # The champion's reference and its calibration, kept as the first check after a promotion
    # keeps them (`monitoring.reference`): every run starts from them.
    from mlops_platform.monitoring.reference import drift_calibration, drift_reference

    drift_calibration(spec, version, drift_reference(spec, version, warehouse, registry), registry)
    warehouse.release()
    (workdir / "state" / "prepared").touch()


def ids_aside(page: str) -> str:
    """A page without its dashboard's and widgets' random ids."""
    return re.sub(r"metric_[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", page)


def run(workdir: Path, days: int, dump: Path | None) -> dict:
    state = workdir / f"run_{os.getpid()}"
    shutil.copytree(workdir / "state", state)
    os.environ["MLOPS_DATA_DIR"] = str(state)
    import dagster as dg

    from mlops_platform.metadata import rounded
    from mlops_platform.monitoring import run as monitoring
    from mlops_platform.monitoring.assets import drift_metadata
    from mlops_platform.registry.store import ModelRegistry
    from mlops_platform.specs import load_spec
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    spec = load_spec("flight_delay")
    warehouse = DuckDBWarehouse(path=str(state / "warehouse.duckdb"), pipelines_dir=str(state))
    registry = ModelRegistry(f"sqlite:///{state / 'mlflow.db'}", str(state / "artifacts"))
    parts: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            cpu = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.process_time() - cpu

        return wrapper

    monitoring.compute_drift = timed("evidently", monitoring.compute_drift)
    monitoring.save_report = timed("page", monitoring.save_report)
    warehouse.anchor()  # as the drift asset's step holds it (warehouse/resources.py)
    out = []
    for n in range(days + 1):
        day = FIRST_DAY + dt.timedelta(days=n)
        parts.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        drift = monitoring.run_drift(spec, day, warehouse, registry, log_dir=state / "serving")
        metadata = rounded(drift_metadata(drift, spec))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        row = {"day": str(day), "cpu": cpu, "wall": wall, **parts}
        out.append(row)
        print(
            f"{day}: drift {cpu:.3f} s CPU (evidently {parts['evidently']:.3f}, page "
            f"{parts['page']:.3f}), {wall:.3f} s wall; share {drift.result.share:.2f}",
            flush=True,
        )
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            skip = ("seconds", "mlflow_run_id")
            meta = {
                k: (v.value if isinstance(v, dg.MetadataValue) else v)
                for k, v in metadata.items()
                if k not in skip
            }
            meta["report"] = str(Path(meta["report"]).relative_to(state))  # not the run's dir
            run = registry.client.get_run(drift.mlflow_run_id)  # its tags and metrics
            meta["mlflow"] = {
                "tags": {
                    k: v.replace(str(state), "<state>")
                    for k, v in sorted(run.data.tags.items())
                    if k != "mlflow.user"
                },
                "metrics": dict(sorted(run.data.metrics.items())),
                "name": run.info.run_name,
                "status": run.info.status,
            }
            (dump / f"{day}.json").write_text(json.dumps(meta, indent=1, default=str))
            page = drift.report_path.read_text(encoding="utf-8")
            (dump / f"{day}.html").write_text(ids_aside(page), encoding="utf-8")
    warehouse.release()
    shutil.rmtree(state, ignore_errors=True)
    first, rest = out[0], out[1:]
    keys = ("cpu", "wall", "evidently", "page")
    medians = {k: statistics.median(d[k] for d in rest) for k in keys}
    print(
        f"first day {first['cpu']:.3f} s CPU; medians of {len(rest)} days: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in medians.items())
    )
    return {"first": first, "days": rest, "medians": medians, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--json", help="write the days and medians here")
    parser.add_argument("--dump", help="write each day's metadata and page (ids aside) here")
    args = parser.parse_args()
    if args.days > (LAST_SCORED - FIRST_DAY).days:
        parser.error(f"--days: at most {(LAST_SCORED - FIRST_DAY).days}")
    os.environ.update(
        RUNTIME__DLTHUB_TELEMETRY="false", DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true"
    )
    workdir = Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "state" / "prepared").exists():
        print(f"preparing Jan 1 - Apr 30 2013, a Jan-Feb champion and 61 scored days in {workdir}")
        prepare(workdir)
    result = run(workdir, args.days, Path(args.dump) if args.dump else None)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
