"""The walk: every policy through the period, step by step, on the same rows.

Per step each policy's current model scores the step's rows (logged with the final labels).
At the step's clock each policy that monitors judges the window of `drift.window_days` days
ending with the step, as the platform's monitoring does: drift of the window's features,
scores and arrived labels against its model's reference with the calibrated thresholds
(`calibration.statistic` is Evidently's PSI, tested equal; `calibration.alarm` is the drift
report's rule), and the performance on arrived labels against its model's held-out rows
(`significance.performance_verdict`, resampling whole days, on the labels of the last
`drift.performance_window_days`). `triggers.decide_retrain` decides, with the cooldown (and,
for the default policy, the spec's maximum model age, as the platform's sensor).
A retrain trains at that clock and, for a gated policy, replaces the model only if the gate
passes.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_platform.model.columns import LABEL, SCORE
from mlops_platform.monitoring.calibration import alarm, window_is_full
from mlops_platform.monitoring.drift import column_kinds, fixed_thresholds
from mlops_platform.monitoring.reference import DAY
from mlops_platform.monitoring.significance import days_of, metric_function, performance_verdict
from mlops_platform.monitoring.triggers import Pace, decide_retrain, pace_of
from mlops_platform.training.params import Hyperparameters
from simulator.backtest.models import Lab, Model, prefetch
from simulator.backtest.policies import (
    CADENCE,
    DEFAULT,
    DRIFT,
    NEVER,
    PERFORMANCE,
    Policy,
    Step,
)
from simulator.backtest.sources import History


@dataclass
class Retrain:
    policy: str
    day: dt.date  # the monitored day (the step's last)
    reason: str
    model: str
    train_end: dt.date
    gate: str  # "passed", "failed: <checks>", "not gated", "not trained: <why>"
    replaced: bool


@dataclass
class Lane:
    """One policy's state along the walk."""

    policy: Policy
    model: Model
    scores: np.ndarray
    last_trigger: str | None = None
    #: The world's pace as the sensor reads it from the registry (`monitoring.run.
    #: champion_pace`): the newest `drift.pace_comparisons` gate comparisons of this lane's
    #: line (promotions and rejections), pooled; None before the first comparison.
    pace: Pace | None = None
    comparisons: list[Pace] = field(default_factory=list)
    steps_since_train: int = 0
    retrains: list[Retrain] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"train": 0.0, "gate": 0.0, "monitor": 0.0}
    )
    paid: set = field(default_factory=set)

    def charge(self, kind: str, key, seconds: float) -> None:
        """Charge a shared result's cost once per policy (what it would pay alone)."""
        if (kind, key) not in self.paid:
            self.paid.add((kind, key))
            self.seconds[kind] += seconds


@dataclass
class Walk:
    history: History
    steps: list[Step]
    lanes: list[Lane]
    bootstrap: Model
    seconds: float


def drift_result(lab: Lab, model: Model, rows: np.ndarray, scores: np.ndarray, known) -> dict:
    """The drift report's figures for the window `rows` scored `scores` (metadata shape the
    retraining sensor reads)."""
    spec = lab.spec
    monitoring = lab.monitoring(model)
    reference, calibration = monitoring.drift_reference, monitoring.calibration
    current = lab.history.table.iloc[rows]
    current = current.assign(**{SCORE: scores, LABEL: current[LABEL].where(known[rows])})
    kinds = {c: k for c, k in column_kinds(spec).items() if c in reference.columns}
    columns = lab.reference_columns(model)
    values = {c: columns[c].statistic(spec.drift.method, current[c]) for c in kinds}
    features = [c for c in kinds if c not in (SCORE, LABEL)]
    thresholds = {**fixed_thresholds(spec), **calibration.thresholds}
    share, drifted, alarms = alarm(
        values, thresholds, features, [SCORE, LABEL], spec.drift.share_threshold
    )
    return {
        "window_full": True,
        "drift_share": share,
        "prediction_drift": values[SCORE],
        "label_shift": values.get(LABEL, math.nan),
        "drift_alarms": ", ".join(alarms) or "none",
        "drifted_features": ", ".join(drifted) or "none",
        "calibration": calibration.describe(),
    }


def performance_result(
    lab: Lab, model: Model, y: np.ndarray, p: np.ndarray, days: np.ndarray
) -> dict:
    """The performance asset's verdict figures. The bootstrap only runs when the point drop
    could be significant (rows enough, drop >= the material minimum): otherwise the rule's
    answer is already no, and the bootstrap costs a second a call."""
    spec, drift = lab.spec, lab.spec.drift
    reference = lab.monitoring(model).performance_reference
    metric = spec.gate.primary_metric
    if len(y) < drift.performance_min_rows:
        return {"performance_drop": math.nan, "significant_drop": False}
    score = metric_function(metric)
    current, baseline = score(y, p), score(reference[LABEL], reference[SCORE])
    drop = baseline - current if spec.higher_is_better else current - baseline
    if not drop >= drift.performance_drop:  # NaN included
        return {"performance_drop": drop, "significant_drop": False}
    verdict = performance_verdict(
        metric,
        y,
        p,
        reference[LABEL].to_numpy(),
        reference[SCORE].to_numpy(),
        min_rows=drift.performance_min_rows,
        min_drop=drift.performance_drop,
        confidence=drift.confidence,
        samples=drift.bootstrap_samples,
        current_groups=days,
        reference_groups=days_of(reference[DAY]),
    )
    return {
        "performance_drop": verdict.drop,
        "significant_drop": verdict.significant,
        "verdict": verdict.describe(),
    }


def _decide(lab: Lab, lane: Lane, step: Step, window: np.ndarray, scored, known) -> str | None:
    """Why `lane` retrains at the step's clock, or None."""
    policy, spec = lane.policy, lab.spec
    if policy.retrain == NEVER:
        return None
    if policy.retrain == CADENCE:
        due = lane.steps_since_train >= policy.every_steps
        return f"cadence: {lane.steps_since_train} steps since the last training" if due else None
    started = time.process_time()
    drift = performance = None
    rows = window[scored[window]]
    if policy.retrain in (DRIFT, DEFAULT):
        days = lab.history.days[rows]
        if window_is_full(np.unique(days).tolist(), spec.drift.window_days):
            drift = drift_result(lab, lane.model, rows, lane.scores[rows], known)
    if policy.retrain in (PERFORMANCE, DEFAULT):
        labelled = rows[known[rows]]
        # The labels of the last `drift.performance_window_days`, as `run_performance` judges.
        first = np.datetime64(step.end - dt.timedelta(days=spec.drift.performance_days - 1))
        labelled = labelled[lab.history.days[labelled] >= first]
        performance = performance_result(
            lab,
            lane.model,
            lab.history.table[LABEL].to_numpy()[labelled],
            lane.scores[labelled],
            lab.history.days[labelled],
        )
    lane.charge("monitor", (lane.model.id, "reference"), lab.monitoring(lane.model).seconds)
    # The default policy is the platform's sensor, as the spec configures it: its age limit
    # too (the champion's age, as the monitoring results name it there) and the alarms it
    # retrains on. The single-trigger policies have no age limit, and the drift policy
    # retrains on every alarm of the drift report. All know their model's age, as the sensor
    # does, for the shorter wait after a rejected challenger.
    if policy.retrain != DEFAULT:
        spec = _single_trigger(spec)
    trained_to = str(lane.model.split.train_end)
    decision = decide_retrain(
        spec, str(step.end), drift, performance, lane.last_trigger, trained_to, lane.pace
    )
    lane.seconds["monitor"] += time.process_time() - started
    if not decision.fire:
        return None
    lane.last_trigger = str(step.end)
    return decision.reason


def _single_trigger(spec):
    """The spec as a single-trigger policy applies it: no age limit, every drift alarm."""
    drift = spec.drift.model_copy(
        update={"max_model_age_days": None, "retrain_on": ["features", "score", "label"]}
    )
    return spec.model_copy(update={"drift": drift})


def _retrain(lab: Lab, lane: Lane, step: Step, reason: str) -> None:
    policy = lane.policy
    lane.steps_since_train = 0
    try:
        challenger = lab.train(step.clock)
    except ValueError as exc:
        lane.retrains.append(
            Retrain(policy.name, step.end, reason, "", step.end, f"not trained: {exc}", False)
        )
        return
    lane.charge("train", challenger.id, challenger.fit_seconds)
    pace = None
    if challenger.id == lane.model.id:
        gate, replaced = "same model as the current one", False
    elif not policy.gated:
        gate, replaced = "not gated", True
    else:
        gated = lab.gate(challenger, lane.model, step.clock)
        lane.charge("gate", (challenger.id, lane.model.id), gated.seconds)
        failed = ", ".join(c.name for c in gated.result.failures)
        gate, replaced = (
            ("passed" if gated.result.passed else f"failed: {failed}"),
            gated.result.passed,
        )
        pace = _pace(lab.spec, gated.result, challenger, lane.model)
    lane.retrains.append(
        Retrain(
            policy.name, step.end, reason, challenger.id, challenger.split.train_end, gate, replaced
        )
    )
    if pace is not None:
        lane.comparisons.append(pace)
        lane.pace = Pace.pooled(lane.comparisons[-lab.spec.drift.pace_comparisons :])
    if replaced:
        lane.model = challenger


def _pace(spec, result, challenger: Model, champion: Model) -> Pace | None:
    """The pace a gate comparison records (`monitoring.run.champion_pace` reads it back live)."""
    return pace_of(
        result.challenger.metrics,
        result.champion.metrics if result.champion else None,
        spec.gate.primary_metric,
        spec.higher_is_better,
        (challenger.split.train_end - champion.split.train_end).days,
    )


def walk(
    history: History,
    steps: list[Step],
    policies: list[Policy],
    params: Hyperparameters | None = None,
    progress=None,
    cache_dir=None,
    threads: int | None = None,
    workers: int = 0,
) -> Walk:
    """Every policy through `steps`; the bootstrap model (trained and gated at the first
    step's start, as the platform's first champion) is every policy's first model."""
    started = time.perf_counter()
    lab = Lab(history, params or Hyperparameters(), cache_dir=cache_dir, threads=threads)
    # The fixed cadences' fits are known in advance: started ahead in worker processes.
    ahead = sorted(
        {
            steps[k - 1].clock
            for p in policies
            if p.retrain == CADENCE
            for k in range(p.every_steps, len(steps) + 1, p.every_steps)
        }
    )
    pool = prefetch(lab, [pd.Timestamp(steps[0].start), *ahead], workers)
    from threadpoolctl import threadpool_limits

    try:
        # Scoring too, not only fitting, on `threads` (after the fork above): on a busy machine
        # a day's 1,000 rows took 2.3 s across 200 trees with every core's threads waiting on
        # each other, most of the walk. The scores are the same (each row's trees add up alike).
        with threadpool_limits(limits=threads):
            return _walk(lab, history, steps, policies, progress, started)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _walk(lab, history, steps, policies, progress, started) -> Walk:
    first = pd.Timestamp(steps[0].start)
    bootstrap = lab.train(first)
    verdict = lab.gate(bootstrap, None, first).result
    if not verdict.passed:
        failed = ", ".join(f"{c.name} ({c.detail})" for c in verdict.failures)
        raise RuntimeError(f"the bootstrap model fails the gate: {failed}")
    n = len(history.table)
    lanes = [Lane(p, bootstrap, np.full(n, np.nan)) for p in policies]
    for lane in lanes:
        lane.charge("train", bootstrap.id, bootstrap.fit_seconds)
    days = history.days
    scored = np.zeros(n, dtype=bool)
    for i, step in enumerate(steps):
        in_step = np.flatnonzero(
            (days >= np.datetime64(step.start)) & (days <= np.datetime64(step.end))
        )
        scored[in_step] = True
        for lane in lanes:
            lane.scores[in_step] = lab.scores(lane.model, i, in_step)
            lane.steps_since_train += 1
        known = lab.known(step.clock)
        since = np.datetime64(step.end - dt.timedelta(days=history.spec.drift.window_days - 1))
        window = np.flatnonzero((days >= since) & (days <= np.datetime64(step.end)))
        for lane in lanes:
            reason = _decide(lab, lane, step, window, scored, known)
            if reason is not None:
                _retrain(lab, lane, step, reason)
        if progress is not None:
            progress(i, step, lanes)
    return Walk(history, steps, lanes, bootstrap, time.perf_counter() - started)


def _walk_group(args) -> list[Lane]:
    history, steps, group, params, cache_dir, threads = args
    return walk(history, steps, group, params, cache_dir=cache_dir, threads=threads).lanes


def walk_in_processes(
    history: History,
    steps: list[Step],
    policies: list[Policy],
    params: Hyperparameters | None = None,
    cache_dir=None,
    threads: int | None = None,
) -> Walk:
    """The same walk, each group of policies in its own forked process (the fixed cadences
    together: they fit the same days), sharing fits through `cache_dir`. The lanes are
    independent, so this is the same result as `walk`, sooner on a machine whose other
    processes leave one process a small share of a core."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    cadences = [p for p in policies if p.retrain == CADENCE]
    groups = [[p] for p in policies if p.retrain != CADENCE] + ([cadences] if cadences else [])
    jobs = [(history, steps, g, params, cache_dir, threads) for g in groups]
    context = multiprocessing.get_context("fork")  # before any fit here: OpenMP and fork
    with ProcessPoolExecutor(len(groups), mp_context=context) as pool:
        found = {lane.policy.name: lane for lanes in pool.map(_walk_group, jobs) for lane in lanes}
    lanes = [found[p.name] for p in policies]
    return Walk(history, steps, lanes, lanes[0].model, time.perf_counter() - started)
