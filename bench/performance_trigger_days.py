"""Why the performance trigger resamples whole days: how much a week's ROC AUC really moves,
against what a row bootstrap and a day-block bootstrap of one week say.

The model is the flights backtest's first one (trained at 2013-03-01 on the labels arrived by
then, `simulator/backtest/models.Lab`); it scores every later week of 2013. The week-to-week
standard deviation of its AUC (from successive differences, so the slow seasonal trend does not
count) is what the trigger's interval must carry; the mean bootstrap standard error of one week
is what each resampling scheme says it is.

    uv run python bench/performance_trigger_days.py

Measured here (2026-11-26, load 22-30 on 2 cores): 44 weeks; week-to-week sd 0.0306; row
bootstrap SE 0.0083 (3.7 times too narrow: a week that is merely hard looks significant);
day-block SE 0.0320.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_platform.model.columns import LABEL
from mlops_platform.model.predict import predict
from mlops_platform.monitoring.significance import Resampler, metric_function
from mlops_platform.settings import data_dir
from mlops_platform.specs import load_spec
from simulator.backtest.models import Lab
from simulator.backtest.sources import load_history

SAMPLES = 100


def main() -> None:
    spec = load_spec("flight_delay")
    history = load_history(spec)
    lab = Lab(history, cache_dir=data_dir() / "backtest" / "models", threads=1)
    model = lab.train(pd.Timestamp("2013-03-01"))
    days, y = history.days, history.table[LABEL].to_numpy(dtype=float)
    start = np.datetime64("2013-03-01")
    rows = np.flatnonzero((days >= start) & ~np.isnan(y))
    p = np.full(len(y), np.nan)
    p[rows] = predict(model.estimator, history.table.iloc[rows], spec)
    auc = metric_function("roc_auc")
    weekly, by_rows, by_days = [], [], []
    rng = np.random.default_rng(0)
    for w in range(44):
        first = start + np.timedelta64(7 * w, "D")
        week = rows[(days[rows] >= first) & (days[rows] < first + np.timedelta64(7, "D"))]
        if len(week) < 200:
            continue
        wy, wp = y[week], p[week]
        weekly.append(auc(wy, wp))
        for resampler, out in (
            (Resampler(len(week)), by_rows),
            (Resampler(len(week), days[week]), by_days),
        ):
            draws = [resampler.draw(rng) for _ in range(SAMPLES)]
            out.append(np.std([auc(wy[d], wp[d]) for d in draws]))
    weekly = np.array(weekly)
    trend_free = np.std(np.diff(weekly), ddof=1) / np.sqrt(2)
    print(
        f"{len(weekly)} weeks; AUC mean {weekly.mean():.3f}, sd {weekly.std(ddof=1):.4f}, "
        f"week-to-week sd {trend_free:.4f}"
    )
    print(
        f"bootstrap SE of one week: rows {np.mean(by_rows):.4f} "
        f"({trend_free / np.mean(by_rows):.1f}x too narrow), whole days {np.mean(by_days):.4f} "
        f"(ratio {trend_free / np.mean(by_days):.2f})"
    )


if __name__ == "__main__":
    main()
