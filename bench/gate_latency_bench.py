"""Benchmark: the gate's single-row latency figure on an idle and on a busy machine.

gate      `measure_latency`: the serving scorer (compiled trees for small batches), threads
          pinned to one, best of the spec's rounds
naive     the previous measurement: `pipeline.predict_proba` on a one-row DataFrame with
          OpenMP's default threads, median of 25 calls

"busy" is one spinning process per core running alongside. Prints each method's idle and busy
figure and its busy/idle ratio: the gate's should stay near 1 (the naive one grew 10x here,
and failed the 50 ms budget). Data preparation and the fit are not timed.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def naive_single_row_ms(model, holdout, spec) -> float:
    from mlops_platform.model.predict import predict

    one = holdout.head(1)
    predict(model, one, spec)
    samples = []
    for _ in range(25):
        started = time.perf_counter()
        predict(model, one, spec)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    from common import loaded_warehouse

    from mlops_platform.evaluation.gate import measure_latency
    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.model.split import split_by_time
    from mlops_platform.specs import load_spec
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.train import fit

    workdir = Path(tempfile.mkdtemp(prefix="gate_latency_bench_"))
    print(f"preparing Jan 1 - Feb 15 2013 in {workdir} (not timed)")
    spec = load_spec("flight_delay")
    warehouse = loaded_warehouse(workdir, dt.datetime(2013, 2, 15))
    features = features_from_warehouse(warehouse, spec)
    train, holdout, _ = split_by_time(features, spec)
    model = fit(spec, train, Hyperparameters())

    figures = {}
    for load in ("idle", "busy"):
        spinners = []
        if load == "busy":
            spinners = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)
            ]
            time.sleep(1)
        try:
            gate = measure_latency(model, holdout, spec, champion_model=model)
            figures["gate", load] = gate.challenger["single_row_ms"]
            figures["naive", load] = naive_single_row_ms(model, holdout, spec)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()

    print(f"\nsingle-row latency (budget {spec.gate.latency_single_row_ms:g} ms)")
    print(f"{'method':<8}{'idle ms':>10}{'busy ms':>10}{'busy/idle':>11}")
    for method in ("gate", "naive"):
        idle, busy = figures[method, "idle"], figures[method, "busy"]
        print(f"{method:<8}{idle:>10.2f}{busy:>10.2f}{busy / idle:>10.1f}x")


if __name__ == "__main__":
    main()
