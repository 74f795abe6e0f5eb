"""Benchmark: does the gate's latency rule hold for models it should pass while a neighbour
slows the machine?

The measurement runs pinned to core 0 (`measure_latency`, as the gate calls it) against:

none        no neighbour of ours (other users of the machine: see the load average printed)
copy-1      one process on core 1 copying a 128 MB array over and over (memory bandwidth, L3)
bursty-0+1  one process on each core alternating 5-60 ms of random writes over 64 MB with
            5-60 ms of sleep (a neighbour whose load comes and goes, as a replay's does; the
            one on core 0 time-shares the measuring core)

for three challenger/champion pairs of real models trained on the 2013 flights:

same        the challenger against itself (two scorers of one model): the ratio must be ~1.0
retrained   the challenger (every training row) against a champion trained 14 days earlier
smaller     the challenger against a champion of 130 trees (the challenger has 200)
same-large  a model of 600 trees of up to 63 leaves against itself: calls of several ms, where
            the rule's 1 ms noise allowance no longer hides a ratio drawn by the neighbour

With `--baseline REV` the gate module of that git revision is measured too, alternately with
this tree's (A B A B per repetition, same neighbour). Printed per row: how often the latency
rule failed, rounds used, the ratio the rule judged (this tree: median of the per-pair ratios;
older code: the ratio of the two figures) and the challenger's 1,000-row figure. Data
preparation and the fits are not timed.

    uv run python bench/gate_latency_noise.py --baseline main --repeats 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEIGHBOURS = {
    "none": [],
    "copy-1": [
        (
            "1",
            "import numpy as np\na = np.ones(128 * 2**20 // 8); b = np.empty_like(a)\n"
            "while True: np.copyto(b, a)",
        )
    ],
    "bursty-0+1": [
        (
            core,
            "import random, time\nimport numpy as np\n"
            "a = np.ones(64 * 2**20 // 8); i = np.random.randint(0, len(a), 2**18)\n"
            "while True:\n"
            "    end = time.perf_counter() + random.uniform(0.005, 0.06)\n"
            "    while time.perf_counter() < end: a[i] += 1\n"
            "    time.sleep(random.uniform(0.005, 0.06))",
        )
        for core in ("0", "1")
    ],
}


def gate_of_revision(revision: str):
    """The gate module as it is at `revision` (imported under another name)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:mlops_platform/evaluation/gate.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="gate_rev_")) / "gate_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gate_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gate_baseline"] = module
    spec.loader.exec_module(module)
    return module


def judged(gate, spec, measured) -> tuple[bool, float, float]:
    """(passed, ratio judged for 1,000 rows, challenger's 1,000-row ms) of a measurement."""
    paired = getattr(measured, "vs_champion", None)
    if len(inspect.signature(gate.latency_checks).parameters) > 3:
        checks = gate.latency_checks(spec, measured.challenger, measured.champion, paired)
    else:
        checks = gate.latency_checks(spec, measured.challenger, measured.champion)
    label = "rows_1000_ms"
    if paired:
        ratio = paired[label].ratio
    else:
        ratio = measured.challenger[label] / measured.champion[label]
    return all(c.passed for c in checks), ratio, measured.challenger[label]


def models():
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import pandas as pd
    from common import loaded_warehouse

    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.model.columns import EVENT_DATE
    from mlops_platform.model.split import split_by_time
    from mlops_platform.specs import load_spec
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.train import fit

    workdir = Path(tempfile.mkdtemp(prefix="gate_latency_noise_"))
    print(f"preparing Jan 1 - Feb 15 2013 in {workdir} and fitting 4 models (not timed)")
    spec = load_spec("flight_delay")
    warehouse = loaded_warehouse(workdir, dt.datetime(2013, 2, 15))
    train, holdout, _ = split_by_time(features_from_warehouse(warehouse, spec), spec)
    dates = pd.to_datetime(train[EVENT_DATE])
    earlier = train[dates <= dates.max() - pd.Timedelta(days=14)]
    challenger = fit(spec, train, Hyperparameters())
    large = fit(spec, train, Hyperparameters(max_iter=600, max_leaf_nodes=63, min_samples_leaf=20))
    pairs = {
        "same": (challenger, challenger),
        "retrained": (challenger, fit(spec, earlier, Hyperparameters())),
        "smaller": (challenger, fit(spec, earlier, Hyperparameters(max_iter=130))),
        "same-large": (large, large),
    }
    return spec, holdout, pairs


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = [ordered[round(q * (len(ordered) - 1))] for q in (0, 0.1, 0.5, 0.9, 1)]
    return " ".join(f"{v:5.2f}" for v in pick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="git revision whose gate is measured alongside")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from mlops_platform.evaluation import gate

    gates = {"this tree": gate}
    if args.baseline:
        gates = {args.baseline: gate_of_revision(args.baseline), **gates}
    spec, holdout, pairs = models()
    os.sched_setaffinity(0, {0})
    print(f"\nmeasuring on core 0, {args.repeats} repetitions per row; load {os.getloadavg()}")
    print(
        f"{'neighbour':<11}{'pair':<10}{'gate':<10}{'fails':>6}{'rounds':>7}  "
        f"{'ratio judged, 1,000 rows: min p10 p50 p90 max':<46}{'>1.25':>6}"
        f"{'challenger ms p50':>18}{'CPU s':>7}"
    )
    for neighbour, processes in NEIGHBOURS.items():
        started = [
            subprocess.Popen(["taskset", "-c", core, sys.executable, "-c", code])
            for core, code in processes
        ]
        try:
            time.sleep(1 if started else 0)
            for pair, (challenger, champion) in pairs.items():
                results = {name: [] for name in gates}
                cpu = dict.fromkeys(gates, 0.0)
                for _ in range(args.repeats):
                    for name, module in gates.items():  # alternately
                        before = time.process_time()
                        measured = module.measure_latency(challenger, holdout, spec, champion)
                        cpu[name] += time.process_time() - before
                        results[name].append((*judged(module, spec, measured), measured.rounds))
                for name, rows in results.items():
                    ratios = [r[1] for r in rows]
                    print(
                        f"{neighbour:<11}{pair:<10}{name:<10}"
                        f"{sum(not r[0] for r in rows):>3}/{len(rows):<2}"
                        f"{statistics.mean(r[3] for r in rows):>7.1f}  {quantiles(ratios):<46}"
                        f"{sum(r > 1.25 for r in ratios):>6}"
                        f"{statistics.median(r[2] for r in rows):>18.2f}{cpu[name]:>7.1f}"
                    )
        finally:
            for process in started:
                process.kill()
                process.wait()
        print(f"  (load after: {os.getloadavg()})")


if __name__ == "__main__":
    main()
