"""Benchmark: train on a full season (Jan-Jun 2013) through the platform vs a bare fit.

platform  train_and_register (time split, fit, MLflow run with params/metrics/dataset,
          skops model logged, registered, hashed, aliased) + run_gate (verified load,
          held-out metrics, slices, latency, report and model card) + promote (alias, audit)
bare      the same scikit-learn pipeline `.fit` on the same training matrix, nothing else

Prints both times and the ratio platform/bare (target < 1.5x). Data preparation (source,
ingestion, features) and MLflow's one-time database migration are not timed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path


def prepare(workdir: Path):
    from common import loaded_warehouse

    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.specs import load_spec

    warehouse = loaded_warehouse(workdir, dt.datetime(2013, 7, 2))
    base = load_spec("flight_delay")
    # Jan 1 .. Jun 23 for training, the last complete week of June held out.
    spec = base.model_copy(update={"training_window_days": 174})
    return spec, features_from_warehouse(warehouse, spec), warehouse


def main() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    workdir = Path(tempfile.mkdtemp(prefix="train_bench_"))
    print(f"preparing Jan-Jun 2013 in {workdir} (not timed)")
    spec, features, warehouse = prepare(workdir)

    from mlops_platform.evaluation.run import run_gate
    from mlops_platform.features.build import LABEL
    from mlops_platform.registry.promotion import promote
    from mlops_platform.registry.store import ModelRegistry
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.tracking import train_and_register
    from mlops_platform.training.train import build_estimator, model_input, split_by_time

    registry = ModelRegistry(f"sqlite:///{workdir / 'mlflow.db'}", str(workdir / "artifacts"))
    registry.experiment_id(spec.name)  # one-time migration, as a running platform has done

    train, _, split = split_by_time(features, spec)
    x, y = model_input(train, spec), train[LABEL].to_numpy()
    params = Hyperparameters()
    # Imports and OpenMP thread start-up are paid once by both sides before timing.
    build_estimator(spec, params).fit(x.head(2_000), y[:2_000])
    started = time.perf_counter()
    build_estimator(spec, params).fit(x, y)
    bare = time.perf_counter() - started

    started = time.perf_counter()
    result = train_and_register(spec, features, registry, warehouse, params.as_dict(), "bench")
    trained = time.perf_counter() - started
    gate = run_gate(spec, features, registry)
    gated = time.perf_counter() - started
    if gate.passed:
        promote(
            registry,
            warehouse,
            spec.name,
            result["version"],
            reason="bench",
            actor="bench",
            run_id="bench",
        )
    platform = time.perf_counter() - started

    print(
        f"\ntraining rows {len(train):,} ({split.train_start} .. {split.train_end}), "
        f"held out {result['holdout_rows']:,}; gate {'passed' if gate.passed else 'FAILED'} "
        f"(ROC AUC {gate.challenger.metrics['roc_auc']:.3f}; failed: "
        f"{[c.detail for c in gate.failures] or 'none'})"
    )
    print(f"{'bare scikit-learn fit':<34} {bare:>7.2f} s")
    print(f"{'platform fit inside the path':<34} {result['fit_seconds']:>7.2f} s")
    print(f"{'platform train+track+register':<34} {trained:>7.2f} s")
    print(f"{'  + evaluation gate':<34} {gated:>7.2f} s")
    print(f"{'  + promotion and audit (total)':<34} {platform:>7.2f} s")
    print(f"ratio platform/bare: {platform / bare:.2f}x (target < 1.5x)")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
