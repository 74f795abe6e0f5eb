"""`simulator backtest --spec <name>`: walk the domain's period, report, check the targets."""

from __future__ import annotations

import datetime as dt
import resource
import time
from dataclasses import dataclass

from mlops_platform.domains import domain_for
from mlops_platform.settings import data_dir
from mlops_platform.specs import ModelSpec, load_spec
from simulator.backtest import SUMMARY_FILE
from simulator.backtest.policies import plan_steps, standard_policies
from simulator.backtest.report import Outcome, summarise
from simulator.backtest.sources import load_history
from simulator.backtest.targets import check_targets
from simulator.backtest.walk import walk, walk_in_processes


@dataclass(frozen=True)
class Plan:
    first: dt.date
    last: dt.date
    step: str  # "day" | "month"
    every_steps: int  # the fixed cadence, in steps
    cadence: str  # how the report names it
    period: str  # the table's rows: "month" | "year"
    why: str


#: Per domain: the period walked and the fixed cadence compared.
PLANS = {
    "flights": Plan(
        dt.date(2013, 3, 1),
        dt.date(2013, 12, 31),
        "day",
        14,
        "14d",
        "month",
        "Flights of 2013, day by day from March 1 (the first champion is trained at 00:00 that "
        "day on the labels arrived by then, as the replay's bootstrap); the fixed cadence is "
        "every 14 days.",
    ),
    "rainfall": Plan(
        dt.date(1978, 1, 1),
        dt.date(1990, 12, 31),
        "month",
        3,
        "3 months",
        "year",
        "Rainfall (one row a day), in monthly steps from 1978 to 1990, across the data's "
        "change near row 12,000 (late 1981); the fixed cadence is every 3 monthly steps "
        "(about 91 days: 14 days would be half a step, and 90 days fits the 200-day window).",
    ),
}


def run_backtest(
    spec: ModelSpec,
    plan: Plan | None = None,
    quiet: bool = False,
    threads: int | None = 1,
    workers: int = 2,
    processes: bool = True,
) -> Outcome:
    plan = plan or PLANS[domain_for(spec).name]
    started, cpu_started = time.perf_counter(), cpu_seconds()
    history = load_history(spec)
    say = (lambda *_: None) if quiet else print
    built = time.perf_counter() - started
    say(f"{spec.name}: {len(history.table):,} feature rows built ({built:.0f} s)")
    steps = plan_steps(plan.first, plan.last, plan.step)

    def progress(i, step, lanes) -> None:
        fired = [
            f"{lane.policy.name}: {lane.retrains[-1].gate}"
            for lane in lanes
            if lane.retrains and lane.retrains[-1].day == step.end
        ]
        if fired:
            elapsed = time.perf_counter() - started
            say(f"  {step.end}: retrain {'; '.join(fired)}  [{elapsed:.0f} s]", flush=True)

    policies = standard_policies(plan.every_steps, plan.cadence)
    cache = data_dir() / "backtest" / "models"
    if processes:
        result = walk_in_processes(history, steps, policies, cache_dir=cache, threads=threads)
    else:
        result = walk(
            history,
            steps,
            policies,
            progress=progress,
            cache_dir=cache,
            threads=threads,
            workers=workers,
        )
    outcome = summarise(result, plan.period, plan.why)
    folder = data_dir() / "reports" / spec.name
    paths = outcome.save(folder)
    summary = "\n".join(
        [
            f"{spec.name}: {spec.gate.primary_metric} per {plan.period} (retrains)\n",
            outcome.table(),
            *check_targets(outcome),
        ]
    )
    total = (time.perf_counter() - started) / 60
    summary += (
        f"\n\nwalk {result.seconds / 60:.1f} min, whole backtest {total:.1f} min, "
        f"{cpu_seconds() - cpu_started:.0f} s CPU"
    )
    say("\n" + summary)
    say("saved: " + ", ".join(str(p) for p in paths.values()))
    # What `simulator replay --backtest` prints and links after its own report (written last:
    # its presence says the backtest finished).
    (folder / SUMMARY_FILE).write_text(summary + "\n")
    return outcome


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the walk's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main(spec_name: str, threads: int = 1, workers: int = 2, processes: bool = True) -> int:
    run_backtest(
        load_spec(spec_name), threads=threads or None, workers=workers, processes=processes
    )
    return 0
