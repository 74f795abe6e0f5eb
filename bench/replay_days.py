"""CPU of the replay's loop cycles, to the millisecond, on the persistent instance
($DAGSTER_HOME, $MLOPS_DATA_DIR) as `simulator replay` leaves it after its warm-up and bootstrap
(e.g. `simulator replay --fresh --through 2013-02-28`; copy the data dir to repeat a trial).

    python bench/replay_days.py --days 7

Prints one JSON line: each cycle's CPU seconds (`time.process_time`, all threads), the part of
it the source clock's move took (`Driver.set_clock`), the median of each, and the load average.
For A/B against another checkout, run this file with that checkout first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    import dagster as dg

    import simulator.replay.driver as driver_module
    from mlops_platform.specs import enabled_specs
    from simulator.definitions import build_simulated_definitions
    from simulator.domains import simulated_for

    specs = enabled_specs()
    sim = simulated_for(specs)
    defs = build_simulated_definitions(specs, profile="local", partitions_until=None)
    instance = dg.DagsterInstance.get()
    source_url = dict(defs.resources)[sim.resource].database_url
    driver = driver_module.Driver(instance, defs, source_url, specs, sim, freeze_between_runs=True)

    clock_cpu: list[float] = []
    set_clock = driver.set_clock

    def timed_set_clock(now):
        started = time.process_time()
        try:
            return set_clock(now)
        finally:
            clock_cpu.append(time.process_time() - started)

    driver.set_clock = timed_set_clock
    cycles, runs = [], []
    try:
        for _ in range(args.days):
            started = time.process_time()
            day = driver.run_cycle()
            cycles.append(time.process_time() - started)
            runs.append([r.job for r in day.runs])
    finally:
        # What the driver holds open (the next trial would replay its WAL files); an older
        # checkout's driver, on PYTHONPATH for an A/B, holds nothing between runs.
        close = getattr(driver, "close", None)
        if close is not None:
            close()
    print(
        json.dumps(
            {
                "module": driver_module.__file__,
                "cycle_cpu": [round(c, 3) for c in cycles],
                "set_clock_cpu": [round(c, 4) for c in clock_cpu],
                "median_cycle_cpu": round(statistics.median(cycles), 3),
                "median_set_clock_cpu": round(statistics.median(clock_cpu), 4),
                "runs": runs,
                "load": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
