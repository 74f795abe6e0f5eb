"""The gate's latency check on a busy machine: the rule (table-driven, with and without paired
calls), challenger and champion called alternately call by call, a good model passing while
cache-thrashing neighbours run on every core, and a slow one failing after every round."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from mlops_platform.evaluation.gate import (
    LATENCY_CALLS,
    LATENCY_NOISE_MS,
    PairedLatency,
    decide,
    evaluate,
    latency_checks,
    latency_verdict,
    measure_latency,
)
from mlops_platform.model.scorer import FastScorer
from mlops_platform.specs import load_spec

SPEC = load_spec("flight_delay")


@pytest.mark.parametrize(
    ("challenger", "champion", "passed", "why"),
    [
        (4.0, None, True, "first model: the ceiling alone decides"),
        (51.0, None, False, "over the ceiling"),
        (51.0, 50.0, False, "over the ceiling even if as fast as the champion"),
        (0.40, 0.20, True, "twice as slow but within timer noise"),
        (0.20 + LATENCY_NOISE_MS + 0.5, 0.20, False, "slower than the champion beyond noise"),
        (6.0, 4.0, True, "1.5x the champion: at the ratio"),
        (6.5, 4.0, False, "1.62x the champion"),
        (3.0, 4.0, True, "faster than the champion"),
        (0.5, 0.0, True, "champion at 0 ms: within noise"),
        (5.0, 0.0, False, "champion at 0 ms: slower beyond noise"),
    ],
)
def test_latency_rule(challenger, champion, passed, why):
    verdict, detail = latency_verdict(challenger, champion, ceiling_ms=50, max_ratio=1.5)
    assert verdict is passed, why
    assert f"{challenger:.2f} ms" in detail


@pytest.mark.parametrize(
    ("paired", "passed", "why"),
    [
        # 2013-05-26, two year replays side by side: the champion's calls happened to run
        # beside a quieter neighbour than the challenger's (5.53 vs 2.88 ms, ratio 1.92), while
        # calls of the two made in pairs were as fast as each other.
        (PairedLatency(1.02, 0.05, 45), True, "paired calls alike: the figures' ratio is noise"),
        (PairedLatency(1.92, 2.65, 45), False, "slower in the pairs too, beyond noise"),
        (PairedLatency(1.92, 0.60, 45), True, "slower in the pairs, within timer noise"),
        (PairedLatency(1.50, 1.80, 45), True, "at the ratio"),
    ],
)
def test_latency_rule_judges_the_paired_calls(paired, passed, why):
    verdict, detail = latency_verdict(5.53, 2.88, ceiling_ms=250, max_ratio=1.5, paired=paired)
    assert verdict is passed, why
    assert f"ratio {paired.ratio:.2f} (median of 45 paired calls)" in detail
    assert "5.53 ms" in detail and "champion 2.88 ms" in detail


def test_a_burst_slowing_some_pairs_leaves_the_paired_ratio_alone():
    """Identical models called in pairs while a neighbour comes and goes: whichever pairs its
    bursts cover (x3, x2), both calls of those pairs are slow, and the median of the per-pair
    ratios stays 1; a burst that ends between the two calls of a pair moves one pair only."""
    slowdown = [3, 3, 3, 2, 2, 1, 1, 1, 1]
    challenger = [1.5 * f for f in slowdown]
    champion = [1.5 * f for f in slowdown]
    champion[4] = 1.5  # the burst ended between the two calls of this pair
    paired = PairedLatency.of(challenger, champion)
    assert (paired.ratio, paired.difference_ms, paired.pairs) == (1.0, 0.0, 9)
    spec = SPEC
    figures = {"single_row_ms": 0.03, "rows_1000_ms": 4.5}
    champion_figures = {"single_row_ms": 0.03, "rows_1000_ms": 2.3}
    vs = {"single_row_ms": PairedLatency(1.0, 0.0, 25), "rows_1000_ms": paired}
    assert all(c.passed for c in latency_checks(spec, figures, champion_figures, vs))
    # the same figures without the pairs fail: what the pairs protect against
    assert not all(c.passed for c in latency_checks(spec, figures, champion_figures))


def test_paired_latency_needs_pairs():
    with pytest.raises(ValueError):
        PairedLatency.of([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no paired calls"):
        PairedLatency.of([], [])


@pytest.fixture(scope="module")
def trained(golden_features):
    from mlops_platform.model.split import split_by_time
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.train import fit

    train, holdout, _ = split_by_time(golden_features, SPEC)
    # A smaller fit than production's (fewer trees, recent rows) keeps the test quick; it
    # clears the spec's floors all the same.
    return fit(SPEC, train.tail(20_000), Hyperparameters(max_iter=100)), holdout


@pytest.fixture()
def busy_cpu():
    """On every core a neighbour that comes and goes (as a year replay's load does): bursts of
    random writes over 64 MB, which evict the shared cache, between short sleeps."""
    code = (
        "import random, time\nimport numpy as np\n"
        "a = np.ones(64 * 2**20 // 8); i = np.random.randint(0, len(a), 2**18)\n"
        "while True:\n"
        "    end = time.perf_counter() + random.uniform(0.005, 0.06)\n"
        "    while time.perf_counter() < end: a[i] += 1\n"
        "    time.sleep(random.uniform(0.005, 0.06))"
    )
    neighbours = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count())]
    yield
    for neighbour in neighbours:
        neighbour.kill()
        neighbour.wait()


def test_gate_passes_a_good_model_while_other_processes_use_every_core(trained, busy_cpu):
    model, holdout = trained
    challenger = evaluate(model, "2", holdout, SPEC, latency=False)
    champion = dataclasses.replace(challenger, version="1")
    measured = measure_latency(model, holdout, SPEC, champion_model=model)
    measured.record(challenger, champion)
    result = decide(SPEC, challenger, champion)
    assert result.passed, [f"{c.name}: {c.detail}" for c in result.failures]
    assert 1 <= measured.rounds <= SPEC.gate.latency_rounds
    # The spec's real budgets (50 ms one row, 250 ms 1,000 rows), and the champion compared
    # over every pair of calls made.
    assert {c.name for c in result.checks} >= {"latency:single_row", "latency:1000_rows"}
    for label, calls in LATENCY_CALLS.items():
        assert measured.vs_champion[label].pairs == measured.rounds * calls
    detail = next(c.detail for c in result.checks if c.name == "latency:1000_rows")
    assert f"(median of {measured.rounds * LATENCY_CALLS['rows_1000_ms']} paired calls)" in detail


def test_challenger_and_champion_are_called_alternately_call_by_call(trained):
    """Every scoring call the measurement makes, in order (seen with a profile hook on the
    real scorer): after one warm-up call each, the challenger's and the champion's calls of a
    batch size come in pairs, one right after the other, so a neighbour meets both alike."""
    model, holdout = trained
    gate = SPEC.gate.model_copy(update={"latency_1000_rows_ms": 0.001, "latency_rounds": 2})
    strict = SPEC.model_copy(update={"gate": gate})
    scored = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code is FastScorer.score.__code__:
            scored.append((id(frame.f_locals["self"]), len(frame.f_locals["matrix"])))

    sys.setprofile(hook)
    try:
        measured = measure_latency(model, holdout, strict, champion_model=model)
    finally:
        sys.setprofile(None)
    assert measured.rounds == 2  # failed on the ceiling: every round measured
    scorers = {who for who, _ in scored}
    assert len(scorers) == 2  # one scorer per model
    for rows, label in ((1, "single_row_ms"), (1000, "rows_1000_ms")):
        calls = [who for who, n in scored if n == rows]
        assert len(calls) == 2 * (1 + measured.rounds * LATENCY_CALLS[label])
        timed = calls[2:]  # after the warm-ups
        assert all({a, b} == scorers for a, b in zip(timed[::2], timed[1::2], strict=True))
        assert timed[0] != timed[2]  # the order turns round: neither model always goes first


def test_a_slow_model_still_fails_after_every_round(trained):
    model, holdout = trained
    gate = SPEC.gate.model_copy(update={"latency_single_row_ms": 0.001, "latency_rounds": 3})
    strict = SPEC.model_copy(update={"gate": gate})
    evaluation = evaluate(model, "1", holdout, strict)
    assert evaluation.latency_rounds == 3  # measured again before failing
    result = decide(strict, evaluation, None)
    assert [c.name for c in result.failures] == ["latency:single_row"]


def test_a_challenger_slower_than_the_champion_in_every_pair_fails(trained, golden_features):
    """Pairing protects a model as fast as the champion, not a slower one: a challenger of
    trees too large for the leaf masks (walked, ~2.5x the champion's time on 1,000 rows) is
    slower in every pair of calls, and fails the ratio after every round."""
    from mlops_platform.model.split import split_by_time
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.train import fit

    champion, holdout = trained
    train, _, _ = split_by_time(golden_features, SPEC)
    large = Hyperparameters(max_iter=80, max_leaf_nodes=80, min_samples_leaf=20)
    slow = fit(SPEC, train.tail(20_000), large)
    gate = SPEC.gate.model_copy(update={"latency_rounds": 2})
    spec = SPEC.model_copy(update={"gate": gate})
    challenger = evaluate(slow, "2", holdout, spec, latency=False)
    incumbent = evaluate(champion, "1", holdout, spec, latency=False)
    measured = measure_latency(slow, holdout, spec, champion_model=champion)
    measured.record(challenger, incumbent)
    result = decide(spec, challenger, incumbent)
    paired = measured.vs_champion["rows_1000_ms"]
    assert measured.rounds == 2  # measured again before failing
    assert paired.ratio > 1.5 and paired.difference_ms > LATENCY_NOISE_MS
    assert "latency:1000_rows" in [c.name for c in result.failures]
