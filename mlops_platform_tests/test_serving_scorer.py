"""The serving fast path gives exactly the pipeline's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_platform.model.input import model_input
from mlops_platform.model.predict import predict
from mlops_platform.model.scorer import FastScorer, InputError, Normalizer, normalize
from mlops_platform.model.split import split_by_time
from mlops_platform.serving.batcher import _shadow_scores
from mlops_platform.serving.manager import ModelHandle
from mlops_platform.specs import load_spec
from mlops_platform.training.params import Hyperparameters
from mlops_platform.training.train import fit

SPEC = load_spec("flight_delay")


@pytest.fixture(scope="module")
def fitted(golden_features):
    train, holdout, _ = split_by_time(golden_features, SPEC)
    return fit(SPEC, train, Hyperparameters(max_iter=60)), holdout


def columns_of(frame):
    x = model_input(frame, SPEC)
    return {c: x[c].where(x[c].notna(), None).tolist() for c in SPEC.features.columns}, x


@pytest.mark.parametrize("rows", [1, 7, 255, 2000])
def test_fast_scorer_equals_the_pipeline(fitted, rows):
    model, holdout = fitted
    frame = holdout.head(rows).copy()
    if rows > 3:  # unknown and missing categories, missing numbers
        frame.iloc[0, frame.columns.get_loc("carrier")] = "ZZ"
        frame.iloc[1, frame.columns.get_loc("dest")] = None
        frame.iloc[2, frame.columns.get_loc("temp")] = np.nan
    columns, x = columns_of(frame)
    scorer = FastScorer(model, SPEC)
    ours = scorer.score(scorer.matrix(normalize(columns, rows, SPEC), rows))
    np.testing.assert_allclose(ours, model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
    # Exact where asked (the deploy guard): the pipeline's numbers bit for bit.
    exact = scorer.score(scorer.frame_matrix(model_input(frame, SPEC)), exact=True)
    np.testing.assert_array_equal(exact, model.predict_proba(x)[:, 1])
    # Batch scoring's path: the warehouse frame as the model layer prepares it.
    np.testing.assert_allclose(
        predict(scorer, frame, SPEC), predict(model, frame, SPEC), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("max_leaf_nodes", [15, 80])
def test_leaf_masks_and_the_walk_give_the_pipelines_numbers(golden_features, max_leaf_nodes):
    """Trees of up to 64 leaves are scored by leaf masks, larger ones by walking: both give
    exactly `predict_proba` on held-out rows with missing and unknown values."""
    from mlops_platform.model.forest import CompiledForest

    train, holdout, _ = split_by_time(golden_features, SPEC)
    params = Hyperparameters(max_iter=30, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=20)
    model = fit(SPEC, train, params)
    frame = holdout.head(500).copy()
    frame.iloc[0, frame.columns.get_loc("carrier")] = "ZZ"
    frame.iloc[1:40, frame.columns.get_loc("dest")] = None
    frame.iloc[2:60, frame.columns.get_loc("temp")] = np.nan
    columns, x = columns_of(frame)
    scorer = FastScorer(model, SPEC)
    matrix = scorer.matrix(normalize(columns, len(frame), SPEC), len(frame))
    expected = model.predict_proba(x)[:, 1]
    walk = CompiledForest(scorer.estimator, leaf_masks=False)
    assert walk.masks is None
    assert (scorer.forest.masks is None) == (max_leaf_nodes > 64)
    for forest in (scorer.forest, walk):
        raw = forest.raw(matrix)
        np.testing.assert_allclose(1 / (1 + np.exp(-raw)), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scorer.score(matrix, exact=True), expected)
    np.testing.assert_array_equal(scorer.forest.raw(matrix), walk.raw(matrix))


def test_bad_columns_are_named():
    with pytest.raises(InputError, match="missing column 'distance'"):
        normalize({}, 1, SPEC)
    columns = {c: [1.0] for c in SPEC.features.numeric} | {
        c: ["x"] for c in SPEC.features.categorical
    }
    columns["distance"] = ["far"]
    with pytest.raises(InputError, match="column 'distance' must be numeric, got 'far'"):
        normalize(columns, 1, SPEC)


@pytest.mark.parametrize("rows", [1, 40])
def test_categories_pass_as_sent_unless_not_unicode(rows):
    """Text columns of a large request are checked in one pass; the answer is the same as the
    value-by-value check (lone surrogates refused, naming the row; numbers become text)."""
    columns = {c: [1.0] * rows for c in SPEC.features.numeric} | {
        c: ["UA", None] * (rows // 2) or ["UA"] for c in SPEC.features.categorical
    }
    assert normalize(columns, rows, SPEC)["carrier"] == columns["carrier"]
    columns["carrier"] = [*columns["carrier"][:-1], 7]
    assert normalize(columns, rows, SPEC)["carrier"][-1] == "7"
    columns["carrier"][-1] = "\ud800"
    with pytest.raises(InputError, match=rf"column 'carrier' row {rows - 1}: not valid Unicode"):
        normalize(columns, rows, SPEC)


def test_shadow_scores_reuse_the_matrix_only_of_a_model_that_encodes_alike(fitted, golden_features):
    """Shadow scoring scores the champion's matrix with the challenger when both encode rows
    alike, and builds the challenger's own otherwise: the challenger's numbers either way."""
    champion_model, holdout = fitted
    train, _, _ = split_by_time(golden_features, SPEC)
    frame = holdout.head(300)
    columns, _ = columns_of(frame)
    columns = normalize(columns, len(frame), SPEC)
    champion = ModelHandle(SPEC.name, "1", "champion", FastScorer(champion_model, SPEC))
    matrix = champion.scorer.matrix(columns, len(frame))
    retrained = fit(SPEC, train, Hyperparameters(max_iter=30, learning_rate=0.1))
    # a model that never saw the first carrier: every other carrier's code shifts by one
    first = sorted(train["carrier"].dropna().unique())[0]
    shifted = fit(SPEC, train[train["carrier"] != first], Hyperparameters(max_iter=30))
    # one champion, then a new challenger (a hot swap): the answer is the new pair's
    for model, alike in ((retrained, True), (shifted, False)):
        challenger = ModelHandle(SPEC.name, "2", "challenger", FastScorer(model, SPEC))
        for _ in range(2):  # asked on every batch, answered alike every time
            assert challenger.scorer.encodes_like(champion.scorer) is alike
            assert champion.scorer.encodes_like(challenger.scorer) is alike
        own = challenger.scorer.score(challenger.scorer.matrix(columns, len(frame)))
        np.testing.assert_array_equal(_shadow_scores(champion, challenger, columns, matrix), own)
        assert np.array_equal(challenger.scorer.score(matrix), own) is alike


def _numeric_columns(rows: int, value) -> dict:
    """`rows` rows of text categories and numbers, `value` in the last row of 'seats'."""
    columns = {c: [3] * rows for c in SPEC.features.numeric} | {
        c: ["UA"] * rows for c in SPEC.features.categorical
    }
    columns["seats"] = [*columns["seats"][:-1], value]
    return columns


@pytest.mark.parametrize("value", [7, 7.5, None, "8.25", " 9 ", "nan", "", "1_0", 10**400])
def test_the_numeric_block_reads_values_as_the_column_check_does(value):
    """A large request's numbers go through one numpy conversion (with `booleans` False its
    values' types are not checked first): the same numbers, or the same error, as the value by
    value check of a single row gives."""
    rows = 40
    try:
        expected = float(normalize(_numeric_columns(1, value), 1, SPEC)["seats"][0])
    except InputError as exc:
        expected = str(exc).replace("row 0", f"row {rows - 1}")
    for booleans in (True, False):
        columns = _numeric_columns(rows, value)
        try:
            got = float(Normalizer(SPEC, None)(columns, rows, booleans)["seats"][-1])
        except InputError as exc:
            got = str(exc)
        if isinstance(expected, float) and np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == expected, (booleans, value)


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_number_is_refused_in_a_large_request(value):
    with pytest.raises(InputError, match=f"column 'seats' must be numeric, got {value}"):
        normalize(_numeric_columns(40, value), 40, SPEC)
