"""The gate's latency check on a busy machine: the rule (table-driven), a good model passing
while other processes use every core, and a slow one failing after every round."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from mlops_platform.evaluation.gate import (
    LATENCY_NOISE_MS,
    decide,
    evaluate,
    latency_verdict,
    measure_latency,
)
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
    """Both cores spinning in other processes, as when the main command failed."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count())
    ]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


def test_gate_passes_a_good_model_while_other_processes_use_every_core(trained, busy_cpu):
    model, holdout = trained
    challenger = evaluate(model, "2", holdout, SPEC, latency=False)
    champion = dataclasses.replace(challenger, version="1")
    measured = measure_latency(model, holdout, SPEC, champion_model=model)
    challenger.latency_ms, challenger.latency_rounds = measured.challenger, measured.rounds
    champion.latency_ms = measured.champion
    result = decide(SPEC, challenger, champion)
    assert result.passed, [f"{c.name}: {c.detail}" for c in result.failures]
    assert 1 <= measured.rounds <= SPEC.gate.latency_rounds
    # The spec's real budgets (50 ms one row, 250 ms 1,000 rows) and the champion comparison.
    assert {c.name for c in result.checks} >= {"latency:single_row", "latency:1000_rows"}
    assert "ratio" in next(c.detail for c in result.checks if c.name == "latency:single_row")


def test_a_slow_model_still_fails_after_every_round(trained):
    model, holdout = trained
    gate = SPEC.gate.model_copy(update={"latency_single_row_ms": 0.001, "latency_rounds": 3})
    strict = SPEC.model_copy(update={"gate": gate})
    evaluation = evaluate(model, "1", holdout, strict)
    assert evaluation.latency_rounds == 3  # measured again before failing
    result = decide(strict, evaluation, None)
    assert [c.name for c in result.failures] == ["latency:single_row"]
