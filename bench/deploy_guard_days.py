"""CPU of one deploy-guard check (`monitoring.guard.guard_deploy`: the labelled rows read, both
versions' scores, the paired bootstrap) on real models and rows, for A/B comparisons.

Takes the data dir of a replay stopped right after a promotion (champion v2, previous v1; e.g.
`simulator replay --fresh --through 2013-03-24`), copies it to `--workdir` (never changed),
makes v2 the scorer of the last `--days` days up to `--day` in the copy's scores table, then
runs the guard for `--day` `--repeat` times after one untimed call (model loads, compiles) and
prints the median CPU ms and the outcome's metadata, unrounded (to diff two versions: run this
file with the other checkout first on PYTHONPATH). `--days` at most the spec's `guard_days`:
the guard then watches and changes nothing (unless the new version is significantly worse).

    python bench/deploy_guard_days.py --data .data --workdir /tmp/guardcopy --days 14
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--spec", default="flight_delay")
    parser.add_argument("--day", default="2013-03-24")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    shutil.copytree(args.data, args.workdir)
    os.environ["MLOPS_DATA_DIR"] = args.workdir

    from mlops_platform.model.columns import MODEL_VERSION
    from mlops_platform.monitoring.guard import guard_deploy
    from mlops_platform.monitoring.reference import DAY
    from mlops_platform.registry.settings import MLflowSettings
    from mlops_platform.specs import load_spec
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    spec = load_spec(args.spec)
    registry = MLflowSettings().registry()
    warehouse = DuckDBWarehouse(path=os.path.join(args.workdir, "warehouse.duckdb"))
    day = dt.date.fromisoformat(args.day)
    first = day - dt.timedelta(days=args.days - 1)
    warehouse.execute(
        f"UPDATE scores.{spec.name} SET {MODEL_VERSION} = CASE WHEN "
        f"CAST({DAY} AS DATE) >= DATE '{first}' THEN '2' ELSE '1' END"
    )
    outcome = guard_deploy(spec, day, warehouse, registry, run_id="bench")
    cpu = []
    for _ in range(args.repeat):
        started = time.process_time()
        outcome = guard_deploy(spec, day, warehouse, registry, run_id="bench")
        cpu.append(time.process_time() - started)
    print(
        json.dumps(
            {
                "module": guard_deploy.__module__,
                "days": args.days,
                "median_cpu_ms": round(1000 * statistics.median(cpu), 1),
                "cpu_ms": [round(1000 * c, 1) for c in cpu],
                "load": os.getloadavg(),
                "metadata": outcome.metadata(),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
