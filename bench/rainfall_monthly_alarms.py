"""Issue 13's rainfall targets on the domain's real cadence (monthly), with the `rain` spec as
it is: at each month's last day the window of `drift.window_days` (200) days is judged against
the champion's drift reference with its calibrated thresholds, and the performance on the labels
arrived of the last `drift.performance_window_days` (30) against its held-out days — the
functions the backtest walks with (`simulator/backtest/walk.py`: `drift_result`,
`performance_result`, which call `monitoring/calibration.py` and `monitoring/significance.py`),
on the feature table the platform builds, the model the training step fits
(`simulator/backtest/models.Lab`).

- Stable part (month ends whose window lies wholly before row 12,000, 1981-11-09): drift alarms
  per 90 days (target: at most one), for two champions: one fitted at the start and kept (the
  oldest reference, the hardest case) and one refitted every January 1 (a champion never more
  than a year old, as the platform's retrains keep it).
- After the change: the month ends at which the kept champion's performance trigger fires
  and the drift share then (target: a retrain within 30 days, with input drift near zero).

    uv run python bench/rainfall_monthly_alarms.py
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd

from mlops_platform.model.columns import LABEL
from mlops_platform.settings import data_dir
from mlops_platform.specs import load_spec
from simulator.backtest.models import Lab
from simulator.backtest.sources import load_history
from simulator.backtest.walk import drift_result, performance_result
from simulator.rainfall.data import CHANGE_ROW, day_of_row

FIRST_CLOCK = pd.Timestamp("1963-02-01")  # about the first 5,000 days labelled
CHANGE = day_of_row(CHANGE_ROW)


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    return [d.date() for d in pd.date_range(first, last, freq="ME")]


def judge(lab: Lab, model, end: dt.date, with_performance: bool) -> dict:
    spec, days = lab.spec, lab.history.days
    since = np.datetime64(end - dt.timedelta(days=spec.drift.window_days - 1))
    rows = np.flatnonzero((days >= since) & (days <= np.datetime64(end)))
    clock = pd.Timestamp(end + dt.timedelta(days=1))
    known = lab.known(clock)
    scores = lab.scores(model, int(np.datetime64(end, "D").astype(int)), rows)
    drift = drift_result(lab, model, rows, scores, known)
    out = {"end": end, "alarm": drift["drift_alarms"] != "none", **drift}
    if with_performance:  # on the labels of the last `drift.performance_window_days`
        first = np.datetime64(end - dt.timedelta(days=spec.drift.performance_days - 1))
        labelled = known[rows] & (days[rows] >= first)
        y = lab.history.table[LABEL].to_numpy()[rows][labelled]
        out |= performance_result(lab, model, y, scores[labelled], days[rows][labelled])
    return out


def rate(frame: pd.DataFrame, label: str) -> None:
    span = (frame["end"].max() - frame["end"].min()).days + 30
    alarms = int(frame["alarm"].sum())
    reasons = frame.loc[frame["alarm"], "drift_alarms"].value_counts().to_dict()
    print(
        f"  {label}: {alarms} alarms in {len(frame)} month ends ({span:,} days) = "
        f"{alarms / span * 90:.2f} per 90 days (target <= 1); by alarm: {reasons}; "
        f"drift share mean {frame['drift_share'].mean():.3f}, max {frame['drift_share'].max():.3f}"
    )


def main() -> None:
    started = time.perf_counter()
    spec = load_spec("rain")
    lab = Lab(load_history(spec), cache_dir=data_dir() / "backtest" / "models", threads=1)
    kept = lab.train(FIRST_CLOCK)
    print(
        f"rain: window {spec.drift.window_days} days, monthly; kept champion trained to "
        f"{kept.split.train_end}, held out to {kept.split.holdout_end}; change {CHANGE}"
    )
    print(f"calibration: {lab.monitoring(kept).calibration.describe()}")
    first = kept.split.holdout_end + dt.timedelta(days=spec.drift.window_days)
    stable = month_ends(first, CHANGE - dt.timedelta(days=1))
    frame = pd.DataFrame([judge(lab, kept, end, with_performance=True) for end in stable])
    print(f"\nstable part, month ends {stable[0]} .. {stable[-1]}:")
    rate(frame, "kept champion")
    fires = int(frame["significant_drop"].sum())
    print(f"  kept champion's performance trigger: {fires} fires in {len(frame)} month ends")
    yearly = []
    for end in stable:  # the latest January 1 model whose held-out days precede the window
        model = lab.train(pd.Timestamp(end.year, 1, 1))
        if end - model.split.holdout_end < dt.timedelta(days=spec.drift.window_days):
            model = lab.train(pd.Timestamp(end.year - 1, 1, 1))
        yearly.append(judge(lab, model, end, with_performance=False))
    rate(pd.DataFrame(yearly), "champion refitted each January 1")

    print("\nafter the change (kept champion):")
    after = [judge(lab, kept, end, True) for end in month_ends(CHANGE, CHANGE + dt.timedelta(90))]
    for row in after:
        below = f"drop {row['performance_drop']:.3f} (below the material minimum)"
        print(
            f"  {row['end']} (+{(row['end'] - CHANGE).days} d): drift share "
            f"{row['drift_share']:.2f}, alarms {row['drift_alarms']}; performance "
            f"{row.get('verdict', below)}"
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
