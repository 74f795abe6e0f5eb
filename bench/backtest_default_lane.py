"""The backtest's default policy alone, under other `drift` settings of the flight-delay spec,
judged against issue 13's targets: a cheap way to try a retraining rule's settings.

Each setting (a JSON object of `drift` fields) walks the default lane only, with the backtest's
own functions (`simulator/backtest/walk.walk`: the same `decide_retrain`, gate and fits, from
its fit cache under `.data/backtest/models`), and is compared month by month with the static
and "every 14d + gate" columns of a full backtest's table (`--static`, `--target`, month ->
metric; those lanes do not depend on the default policy's settings).

    uv run python bench/backtest_default_lane.py --static '{"3": 0.7098, ...}' \
        --target '{"3": 0.7127, ...}' '{"age_loss_budget": 0.01, "pace_comparisons": 3, ...}'
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from mlops_platform.settings import data_dir
from mlops_platform.specs import load_spec
from simulator.backtest.policies import DEFAULT, Policy, plan_steps
from simulator.backtest.report import summarise
from simulator.backtest.run import PLANS
from simulator.backtest.sources import load_history
from simulator.backtest.targets import MATCH, MAX_BELOW, SHARE_OF_RETRAINS
from simulator.backtest.walk import walk

GATED_RETRAINS = 21  # "every 14d + gate" on flights 2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--static", required=True, help="JSON: month number -> metric")
    parser.add_argument("--target", required=True, help="JSON: month number -> metric")
    parser.add_argument("settings", nargs="+", help="JSON: drift fields to set")
    args = parser.parse_args()
    static = {int(k): v for k, v in json.loads(args.static).items()}
    target = {int(k): v for k, v in json.loads(args.target).items()}
    base = load_spec("flight_delay")
    history = load_history(base)
    plan = PLANS["flights"]
    steps = plan_steps(plan.first, plan.last, plan.step)
    for text in args.settings:
        spec = base.model_copy(update={"drift": base.drift.model_copy(update=json.loads(text))})
        spec = type(spec).model_validate(spec.model_dump())  # the spec's own checks
        cpu, started = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
        result = walk(
            type(history)(spec, history.table, history.arrives),
            steps,
            [Policy("default", DEFAULT)],
            cache_dir=data_dir() / "backtest" / "models",
            threads=1,
        )
        metrics = summarise(result, "month").metrics["default"]
        months = {int(str(k)[-2:]): float(v) for k, v in metrics.items()}
        gaps = {m: months[m] - target[m] for m in target}
        beats = sum(months[m] > static[m] for m in static)
        matched = sum(g >= -MATCH for g in gaps.values())
        worst = min(gaps.values())
        retrains = result.lanes[0].retrains
        met = (
            beats == len(static)
            and matched >= 0.8 * len(target)
            and worst >= -MAX_BELOW
            and len(retrains) <= SHARE_OF_RETRAINS * GATED_RETRAINS
        )
        print(
            f"\n{text}: beats static {beats}/{len(static)}, matched {matched}/{len(target)}, "
            f"worst {worst:+.4f}, {len(retrains)} retrains ({len(retrains) / GATED_RETRAINS:.0%})"
            f"{'  ALL TARGETS MET' if met else ''}  [{time.perf_counter() - started:.0f} s, "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu:.0f} s CPU]"
        )
        print("  " + " ".join(f"{m:02d}:{g:+.4f}" for m, g in gaps.items()))
        for r in retrains:
            print(f"  {r.day} (data to {r.train_end}) {r.gate[:36]:36s} {r.reason[:120]}")


if __name__ == "__main__":
    main()
