"""Calibrated drift on the flights of 2013 (the replay's data, read from the package's files):
is the seasonal change of weather still detected in spring and in autumn?

For each season a champion is trained the way the platform trains it (the spec's features,
training window ending before the season), its reference is calibrated on its own windows
(`monitoring/calibration.py`), and every 7-day window of the following months is judged with
the same rule the drift report applies. Prints, per month, the windows evaluated and the alarm
days (features / score / label), with the calibration's estimated false-alarm rate.

    uv run python bench/drift_calibration_flights.py
"""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd

from mlops_platform.features.build import build_feature_table
from mlops_platform.model.columns import EVENT_DATE, LABEL, SCORE
from mlops_platform.model.predict import predict
from mlops_platform.monitoring.calibration import alarm, statistic
from mlops_platform.monitoring.drift import calibrate_spec, column_kinds, fixed_thresholds
from mlops_platform.specs import load_spec
from mlops_platform.training.params import Hyperparameters
from mlops_platform.training.train import fit
from simulator.flights.nycflights import read_table

DATE = EVENT_DATE  # the feature table's day column

SEASONS = {
    # name: (training end, evaluated from, evaluated through)
    "spring": (dt.date(2013, 2, 28), dt.date(2013, 3, 1), dt.date(2013, 5, 31)),
    "autumn": (dt.date(2013, 8, 31), dt.date(2013, 9, 1), dt.date(2013, 11, 30)),
}


def main(reference_days: int | None) -> None:
    spec = load_spec("flight_delay")
    drift = spec.drift.model_copy(update={"reference_days": reference_days})
    spec = spec.model_copy(update={"drift": drift})
    table = build_feature_table(
        {name: read_table(name) for name in ("flights", "weather", "planes")}, spec
    )
    table = table[table[LABEL].notna()].reset_index(drop=True)
    days = table[DATE].dt.date
    kinds = column_kinds(spec)
    print(
        f"reference_days={reference_days}, window {spec.drift.window_days} days, "
        f"target false-alarm rate {spec.drift.false_alarm_rate}"
    )
    for season, (train_end, first, last) in SEASONS.items():
        train_start = max(dt.date(2013, 1, 1), train_end - dt.timedelta(days=364))
        train = table[(days >= train_start) & (days <= train_end)]
        model = fit(spec, train, Hyperparameters())
        ref_start = train_start
        if reference_days:
            ref_start = max(train_start, train_end - dt.timedelta(days=reference_days - 1))
        reference = table[(days >= ref_start) & (days <= train_end)]
        reference = reference.assign(**{SCORE: predict(model, reference, spec)})
        calibration = calibrate_spec(reference, spec, reference[DATE])
        thresholds = {**fixed_thresholds(spec), **calibration.thresholds}
        print(
            f"\n{season}: trained {train_start}..{train_end}, reference {ref_start}.."
            f"{train_end} ({len(reference)} rows); {calibration.describe()}"
        )
        print(
            "  thresholds: "
            + ", ".join(f"{c} {t:.3f}" for c, t in thresholds.items() if c in kinds)
        )
        rows = []
        day = first + dt.timedelta(days=spec.drift.window_days - 1)
        while day <= last:
            start = day - dt.timedelta(days=spec.drift.window_days - 1)
            window = table[(days >= start) & (days <= day)]
            window = window.assign(**{SCORE: predict(model, window, spec)})
            values = {
                c: statistic(spec.drift.method, reference[c], window[c], k)
                for c, k in kinds.items()
            }
            share, drifted, reasons = alarm(
                values,
                thresholds,
                calibration.share_columns,
                calibration.own_columns,
                spec.drift.share_threshold,
            )
            rows.append(
                {
                    "day": day,
                    "month": day.strftime("%Y-%m"),
                    "share": share,
                    "alarm": bool(reasons),
                    "features": "features" in reasons,
                    "score": SCORE in reasons,
                    "label": LABEL in reasons,
                    "drifted": ",".join(drifted),
                }
            )
            day += dt.timedelta(days=1)
        frame = pd.DataFrame(rows)
        summary = frame.groupby("month").agg(
            windows=("alarm", "size"),
            alarm_days=("alarm", "sum"),
            on_features=("features", "sum"),
            on_score=("score", "sum"),
            on_label=("label", "sum"),
            mean_share=("share", "mean"),
        )
        print(summary.to_string())
        fired = frame[frame["alarm"]]
        print(
            f"  first alarm: {fired['day'].iloc[0] if len(fired) else 'none'}"
            + (f" ({fired['drifted'].iloc[0]})" if len(fired) else "")
        )
    np.seterr(all="ignore")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "none" else None)
