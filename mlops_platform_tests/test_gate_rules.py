"""The gate's floors when the champion is below them too (pure: Evaluation records in, verdict
out). After a concept change every model misses the old bar; the floor must not keep the worse
one in service, and must still stop a challenger that is bad on its own."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_platform.evaluation.gate import Evaluation, decide
from mlops_platform.specs import load_spec

SPEC = load_spec("rain")  # floors: roc_auc >= 0.55, brier <= 0.25
LATENCY = {"single_row_ms": 1.0, "rows_1000_ms": 10.0}


def evaluation(version: str, roc_auc: float, brier: float) -> Evaluation:
    return Evaluation(
        version=version,
        rows=200,
        metrics={"roc_auc": roc_auc, "brier": brier, "log_loss": 0.6},
        slices={},
        slice_rows={},
        latency_ms=dict(LATENCY),
        latency_rounds=1,
    )


@pytest.mark.parametrize(
    ("challenger", "champion", "waived", "passed", "why"),
    [
        ((0.53, 0.20), (0.45, 0.20), True, True, "both below the AUC bar, challenger better"),
        ((0.53, 0.26), (0.45, 0.30), True, True, "both below both bars, challenger better on each"),
        ((0.53, 0.20), (0.54, 0.20), False, False, "both below, champion better: kept"),
        ((0.53, 0.20), (0.80, 0.20), False, False, "champion above the bar: the bar holds"),
        ((0.53, 0.20), None, False, False, "no champion: the bar decides"),
        ((0.53, 0.26), (0.45, 0.24), True, False, "brier: champion within its bar, challenger not"),
    ],
)
def test_a_floor_the_champion_misses_too_does_not_keep_the_worse_model(
    challenger, champion, waived, passed, why
):
    result = decide(
        SPEC,
        evaluation("2", *challenger),
        evaluation("1", *champion) if champion else None,
    )
    auc = next(c for c in result.checks if c.name == "floor:roc_auc")
    assert auc.passed is waived, why
    assert ("champion v1 is worse" in auc.detail) is waived, auc.detail
    assert result.passed is passed, (why, [f"{c.name}: {c.detail}" for c in result.failures])


def test_the_waiver_is_the_specs_choice():
    strict = SPEC.model_copy(
        update={"gate": SPEC.gate.model_copy(update={"replace_champion_below_floor": False})}
    )
    result = decide(strict, evaluation("2", 0.53, 0.20), evaluation("1", 0.45, 0.20))
    assert not result.passed
    assert [c.name for c in result.failures] == ["floor:roc_auc"]


def test_the_gate_reads_the_held_out_rows_of_the_whole_table_from_the_warehouse(
    golden_features, tmp_path
):
    """The gate reads only its held-out window (`gate_rows`): the same rows, in the same order,
    as that window of the whole feature table, so its metrics, slices and the evaluation
    dataset's digest are those of the whole-table read."""
    from mlops_platform.evaluation.run import gate_rows
    from mlops_platform.model.split import holdout_of, split_by_time
    from mlops_platform.model.version import data_digest
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    spec = load_spec("flight_delay")
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.append("features", spec.name, golden_features)
    _, _, split = split_by_time(golden_features, spec)
    whole = holdout_of(warehouse.read_table("features", spec.name), split)
    read = holdout_of(gate_rows(warehouse, spec, split), split)
    assert len(read) > 0
    assert len(gate_rows(warehouse, spec, split)) < len(golden_features)
    pd.testing.assert_frame_equal(read.reset_index(drop=True), whole.reset_index(drop=True))
    assert data_digest(read.reset_index(drop=True)) == data_digest(whole.reset_index(drop=True))
