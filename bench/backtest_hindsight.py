"""How many months could ANY schedule of B retrains match a backtest's fixed cadence? An upper
bound for a retraining rule, found in hindsight (issue 13's flights targets).

A model is fitted at every 7th day from March 1 (the training step's own split and fit, through
the backtest's `simulator/backtest/models.Lab`, sharing its fit cache), scores the labelled rows
of the 84 days it could serve, and schedules on that weekly grid (ungated) are evaluated month by
month against the cadence-with-gate column of a backtest table (`--target`, month -> metric):
the uniform cadences of 14, 21, 28 and 35 days, then a random local search for the best
schedule of B retrains. The 14-day schedule is the backtest's "every 14d" policy exactly, so its
row checks this script against the walk. The search picks days in hindsight: what it finds is
a bound on what timing alone could reach, not a rule (it sees the answers).

    uv run python bench/backtest_hindsight.py --target '{"3": 0.7127, ...}' [--without recent]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from mlops_platform.settings import data_dir
from mlops_platform.specs import load_spec
from simulator.backtest.models import Lab
from simulator.backtest.sources import load_history

#: Days a model may serve in a schedule (a longer gap is not a schedule searched).
HOLD_DAYS = 84
MATCH = 0.0005  # simulator/backtest/targets.MATCH
MONTHS = range(3, 13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="JSON: month number -> metric")
    parser.add_argument("--without", default="", help="a feature function left out")
    parser.add_argument("--budgets", default="10,12,13,15")
    args = parser.parse_args()
    target = {int(k): v for k, v in json.loads(args.target).items()}
    spec = load_spec("flight_delay")
    if args.without:
        f = spec.features
        produced = {"recent": ["origin_late_1d", "origin_late_7d", "carrier_late_7d",
                               "dest_late_7d"]}.get(args.without, [])  # fmt: skip
        f = f.model_copy(
            update={
                "functions": [x for x in f.functions if x != args.without],
                "numeric": [c for c in f.numeric if c not in produced],
            }
        )
        spec = spec.model_copy(update={"features": f})
    history = load_history(spec)
    days, label = history.days, history.table["label"].to_numpy()
    month = pd.DatetimeIndex(days).month.to_numpy()
    lab = Lab(history, cache_dir=data_dir() / "backtest" / "models", threads=1)
    first = np.datetime64("2013-03-01")
    clocks = [first + np.timedelta64(7 * j, "D") for j in range(44)]
    scores = np.full((len(clocks), len(days)), np.nan, dtype=np.float32)
    started = time.perf_counter()
    with threadpool_limits(1):
        for j, clock in enumerate(clocks):
            model = lab.train(pd.Timestamp(clock))
            serves = (days >= clock) & (days < clock + np.timedelta64(HOLD_DAYS, "D"))
            rows = np.flatnonzero(serves & ~np.isnan(label))
            scores[j, rows] = lab.scores(model, j, rows)
    print(f"{len(clocks)} models in {time.perf_counter() - started:.0f} s")
    rows_of = {m: np.flatnonzero((month == m) & ~np.isnan(label) & (days >= first)) for m in MONTHS}

    def evaluate(schedule):
        chosen = sorted({0, *schedule})
        at = np.array([clocks[j] for j in chosen])
        result = {}
        for m in MONTHS:
            r = rows_of[m]
            which = np.searchsorted(at, days[r], side="right") - 1
            if ((days[r] - at[which]).astype(int) >= HOLD_DAYS).any():
                return None
            result[m] = roc_auc_score(label[r], scores[np.array(chosen)[which], r])
        return result

    def judged(result):
        if result is None:
            return (-1, -9.0)
        gaps = [result[m] - target[m] for m in MONTHS]
        return (sum(g >= -MATCH for g in gaps), min(gaps))

    def show(result):
        return " ".join(f"{m:02d}:{result[m] - target[m]:+.4f}" for m in MONTHS)

    for k in (2, 3, 4, 5):
        schedule = list(range(k, 44, k))
        result = evaluate(schedule)
        matched, worst = judged(result)
        print(f"every {7 * k}d ({len(schedule)} retrains): matched {matched}, worst {worst:+.4f}; "
              + show(result))  # fmt: skip
    rng = random.Random(0)
    for budget in (int(b) for b in args.budgets.split(",")):
        best, best_judged = None, (-2, -9.0)
        for _ in range(4):
            current = sorted(rng.sample(range(1, 44), budget))
            current_judged = judged(evaluate(current))
            for _ in range(300):
                candidate = list(current)
                candidate[rng.randrange(budget)] = rng.randrange(1, 44)
                if len(set(candidate)) < budget:
                    continue
                candidate.sort()
                candidate_judged = judged(evaluate(candidate))
                if candidate_judged >= current_judged:
                    current, current_judged = candidate, candidate_judged
            if current_judged > best_judged:
                best, best_judged = current, current_judged
        print(f"best found, {budget} retrains: matched {best_judged[0]}, worst "
              f"{best_judged[1]:+.4f} at {[str(clocks[j]) for j in best]}; "
              + show(evaluate(best)))  # fmt: skip


if __name__ == "__main__":
    main()
