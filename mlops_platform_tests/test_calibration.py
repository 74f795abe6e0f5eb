"""Calibrated drift and the significance rule, tested directly on synthetic streams."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_platform.monitoring.calibration import (
    Calibration,
    alarm,
    calibrate,
    reference_windows,
    statistic,
    window_is_full,
    window_statistics,
)
from mlops_platform.monitoring.significance import (
    Resampler,
    _paired_drops,
    _SampledAuc,
    _worse,
    metric_function,
    paired_verdict,
    performance_verdict,
)

WINDOW = 7
COLUMNS = {"a": False, "b": False, "c": False, "kind": True}


def stream(days: int, shift_from: int | None = None, seed: int = 1) -> pd.DataFrame:
    """`days` days of 80 rows; each day has its own weather (a day-level effect), so a week
    differs from the rest more than row-level noise says, as real days do."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in range(days):
        n = 80
        effect = rng.normal(0, 0.3, 3)
        shift = 1.5 if shift_from is not None and day >= shift_from else 0.0
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=day),
                    "a": rng.normal(effect[0] + shift, 1, n),
                    "b": rng.normal(effect[1] + shift, 1, n),
                    "c": rng.gamma(2 + effect[2], 1, n),
                    "kind": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def judge(calibration: Calibration, reference: pd.DataFrame, frame: pd.DataFrame, first: int):
    """Alarm of every full 7-day window ending on day >= first."""
    days = (frame["date"] - frame["date"].min()).dt.days
    out = []
    for end in range(first + WINDOW - 1, days.max() + 1):
        window = frame[(days > end - WINDOW) & (days <= end)]
        values = {c: statistic("psi", reference[c], window[c], k) for c, k in COLUMNS.items()}
        out.append(
            bool(
                alarm(
                    values,
                    calibration.thresholds,
                    calibration.share_columns,
                    calibration.own_columns,
                    calibration.share_threshold,
                )[2]
            )
        )
    return np.array(out)


def calibrated(reference: pd.DataFrame, target: float) -> Calibration:
    return calibrate(
        reference,
        COLUMNS,
        method="psi",
        window_days=WINDOW,
        share_columns=list(COLUMNS),
        own_columns=[],
        share_threshold=0.3,
        target_rate=target,
        dates=reference["date"],
        max_windows=60,
    )


@pytest.fixture(scope="module")
def stable():
    return stream(480)


def test_stable_stream_alarms_at_the_nominal_rate_and_a_fixed_threshold_does_not(stable):
    reference = stable[stable["date"] < "2020-04-30"]  # 120 days
    calibration = calibrated(reference, target=0.05)
    assert calibration.kind == "time windows" and calibration.windows == 60
    assert calibration.alarming_windows / calibration.windows <= 0.05
    assert "estimated false-alarm rate" in calibration.describe()
    later = judge(calibration, reference, stable, first=120)
    assert len(later) == 354
    # Out of sample, on a year of windows the calibration never saw: about the nominal rate
    # (0.034 here; overlapping windows alarm together, hence the margin).
    assert later.mean() <= 0.1, later.mean()
    # Thresholds below the reference's own variability (its median week): the day effects
    # alone make them fire on a large share of these stable weeks.
    naive = Calibration(**{**calibration.__dict__, "thresholds": calibration.null_median})
    assert judge(naive, reference, stable, first=120).mean() > 0.2


def test_real_shift_is_detected_once_the_window_holds_it():
    frame = stream(120, shift_from=80)
    reference = frame[frame["date"] < "2020-03-01"]
    calibration = calibrated(reference, target=0.01)
    alarms = judge(calibration, reference, frame, first=60)  # windows ending on day 66..119
    before = alarms[: 80 - 66]  # windows entirely before the shift
    assert not before.any()
    assert alarms[-30:].all()  # every window wholly inside the shifted period


def test_thresholds_follow_the_window_length(stable):
    reference = stable[stable["date"] < "2020-03-01"]  # 60 days
    weekly = calibrated(reference, 0.05)
    # A shorter window is noisier: its thresholds must be higher.
    daily = calibrate(
        reference,
        COLUMNS,
        method="psi",
        window_days=1,
        share_columns=list(COLUMNS),
        own_columns=[],
        share_threshold=0.3,
        target_rate=0.05,
        dates=reference["date"],
    )
    assert all(daily.thresholds[c] > weekly.thresholds[c] for c in COLUMNS)
    # Floors are a minimum effect size, never lowered by calibration.
    floored = calibrate(
        reference,
        COLUMNS,
        method="psi",
        window_days=WINDOW,
        share_columns=list(COLUMNS),
        own_columns=[],
        share_threshold=0.3,
        target_rate=0.05,
        dates=reference["date"],
        floors=dict.fromkeys(COLUMNS, 5.0),
    )
    assert set(floored.thresholds.values()) == {5.0}
    assert Calibration.from_json(weekly.to_json()) == weekly


@pytest.mark.parametrize("categorical", [False, True])
def test_statistic_is_evidentlys_own(categorical):
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    frame = stream(40)  # 3,200 rows
    column = "kind" if categorical else "a"
    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    reference, current = frame[column].iloc[:2000], frame[column].iloc[2000:]
    evidently = get_stattest(reference, current, kind, "psi")(reference, current, kind, 0.0)
    assert statistic("psi", reference, current, categorical) == pytest.approx(evidently.drift_score)
    assert math.isnan(statistic("psi", reference, current.iloc[:0], categorical))
    # The calibration's shortcut (bins counted once) gives the same value per window.
    windows = [np.arange(i, i + 300) for i in range(0, 2700, 450)]
    fast = window_statistics("psi", frame[column], windows, categorical)
    everything = np.ones(len(frame), dtype=bool)
    for value, rows in zip(fast, windows, strict=True):
        rest = everything.copy()
        rest[rows] = False
        assert value == pytest.approx(
            statistic("psi", frame[column][rest], frame[column].iloc[rows], categorical)
        )


@pytest.mark.parametrize(
    ("days", "window", "full"), [([1], 7, False), (range(6), 7, False), (range(7), 7, True)]
)
def test_a_window_is_full_only_with_all_its_days(days, window, full):
    assert window_is_full(days, window) is full


def test_reference_without_enough_days_falls_back_to_row_samples():
    frame = stream(10)
    kind, windows = reference_windows(frame["date"], 7, 20, window_rows=300)
    assert kind == "row samples" and len(windows) == 20 and {len(w) for w in windows} == {300}


def test_alarm_rule_share_and_own_columns():
    thresholds = {"a": 1.0, "b": 1.0, "c": 1.0, "score": 0.5}
    share, drifted, reasons = alarm(
        {"a": 2.0, "b": 0.1, "c": math.nan, "score": 0.6},
        thresholds,
        ["a", "b", "c"],
        ["score"],
        0.3,
    )
    assert (share, drifted, reasons) == (0.5, ["a"], ["features", "score"])
    assert (
        alarm(
            {"a": 0.5, "b": 0.5, "c": 0.5, "score": 0.1},
            thresholds,
            ["a", "b", "c"],
            ["score"],
            0.3,
        )[2]
        == []
    )


# The significance rule ---------------------------------------------------------------------


def scored(n: int, quality: float, seed: int):
    """Labels and scores whose AUC grows with `quality` (0: noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, y * quality + rng.normal(0, 1, n)


def test_no_false_fire_on_noise():
    reference = scored(5000, 1.0, seed=0)
    fired = 0
    for seed in range(1, 41):  # 40 live weeks of the same model, same world
        verdict = performance_verdict(
            "roc_auc",
            *scored(600, 1.0, seed),
            *reference,
            min_rows=200,
            min_drop=0.03,
            samples=200,
        )
        assert verdict.status == "ok"
        fired += verdict.significant
    assert fired <= 2  # a 95% interval: about 1 in 40 by chance, often fewer with min_drop


def test_fires_on_a_real_drop_and_says_why():
    verdict = performance_verdict(
        "roc_auc",
        *scored(600, 0.4, seed=3),
        *scored(5000, 1.0, seed=0),
        min_rows=200,
        min_drop=0.03,
    )
    assert verdict.significant and verdict.drop > 0.1 and verdict.low > 0
    assert "significant" in verdict.describe() and "CI" in verdict.describe()


def test_too_few_labelled_rows_give_no_verdict():
    verdict = performance_verdict(
        "roc_auc",
        *scored(50, 0.0, seed=3),
        *scored(5000, 1.0, seed=0),
        min_rows=200,
        min_drop=0.03,
    )
    assert not verdict.significant and "too few labelled rows" in verdict.status


def test_a_small_drop_is_not_material():
    verdict = performance_verdict(
        "roc_auc",
        *scored(20_000, 0.95, seed=3),
        *scored(20_000, 1.0, seed=0),
        min_rows=200,
        min_drop=0.05,
        samples=200,
    )
    assert verdict.low > 0 and not verdict.significant  # real but smaller than min_drop


def week(days: int, rows: int, seed: int, quality: float = 1.0, spread: float = 0.6):
    """`days` days of `rows` rows, each day its own difficulty (how well the score separates
    the classes that day, as one day's weather makes all its flights hard to call): labels,
    scores and the day of each row."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), rows)
    separation = np.maximum(rng.normal(quality, spread, days), 0)[day]
    y = rng.integers(0, 2, days * rows)
    return y, y * separation + rng.normal(0, 1, days * rows), day


def test_day_blocks_keep_whole_days():
    groups = np.repeat([10, 20, 30, 40], [1, 2, 3, 4])
    resampler = Resampler(len(groups), groups)
    drawn = resampler.draw(np.random.default_rng(0))
    # Every day drawn comes with all its rows, as often as it was drawn.
    counts = pd.Series(groups[drawn]).value_counts()
    assert all(n % (g // 10) == 0 for g, n in counts.items())
    assert resampler.groups == 4
    with pytest.raises(ValueError, match="3 group labels for 10 rows"):
        Resampler(10, np.zeros(3))


def test_day_block_bootstrap_does_not_fire_on_ordinary_weeks():
    """Weeks of the same model in the same world, whose days differ in difficulty: resampling
    rows (as if 2,100 rows were independent) calls many ordinary weeks a significant drop;
    resampling whole days does not, and still sees a model that lost its skill. Each trial
    has its own reference week (the rate per comparison; against one shared reference the
    trials would not be independent: a lucky reference week makes many fire together)."""
    by_rows = by_days = 0
    for seed in range(1, 21):  # 20 live weeks
        reference = week(7, 300, seed=1000 + seed)
        y, p, day = week(7, 300, seed)
        common = dict(min_rows=200, min_drop=0.03, samples=100, seed=seed)
        by_rows += performance_verdict("roc_auc", y, p, *reference[:2], **common).significant
        verdict = performance_verdict(
            "roc_auc",
            y,
            p,
            *reference[:2],
            **common,
            current_groups=day,
            reference_groups=reference[2],
        )
        assert verdict.status == "ok"
        by_days += verdict.significant
    assert by_rows >= 4  # the row bootstrap is over-confident on such weeks
    assert by_days <= 2  # a 95% interval: about 1 in 40 by chance
    y, p, day = week(7, 300, seed=99, quality=0.0)
    lost = performance_verdict(
        "roc_auc",
        y,
        p,
        *reference[:2],
        min_rows=200,
        min_drop=0.03,
        samples=100,
        current_groups=day,
        reference_groups=reference[2],
    )
    assert lost.significant and lost.low > 0, lost.describe()


def test_day_blocks_need_days_enough():
    y, p, day = week(3, 300, seed=1)
    verdict = performance_verdict(
        "roc_auc",
        y,
        p,
        *week(7, 300, seed=0)[:2],
        min_rows=200,
        min_drop=0.03,
        current_groups=day,
    )
    assert not verdict.significant and "too few days in the live window" in verdict.status
    assert (
        "too few days"
        in paired_verdict("roc_auc", y, p, p, min_rows=200, min_drop=0.01, groups=day).status
    )


def test_paired_rule_on_the_same_rows():
    y, good = scored(3000, 1.0, seed=5)
    rng = np.random.default_rng(6)
    worse = good + rng.normal(0, 1.5, len(y))
    assert paired_verdict("roc_auc", y, worse, good, min_rows=200, min_drop=0.01).significant
    same = paired_verdict(
        "roc_auc", y, good + rng.normal(0, 0.01, len(y)), good, min_rows=200, min_drop=0.01
    )
    assert same.status == "ok" and not same.significant
    # Lower is better for the Brier score: a better model is never "worse".
    p = 1 / (1 + np.exp(-good))
    assert not paired_verdict(
        "brier", y, p, np.full(len(y), 0.5), min_rows=200, min_drop=0.0
    ).significant


@pytest.mark.parametrize("decimals", [2, 4, None])  # many ties, some, none
def test_the_bootstraps_auc_is_exactly_the_metrics(decimals):
    # The bootstrap counts each sample's AUC from the scores ranked once; it must be the very
    # number `metric_function("roc_auc")` gives (the verdicts stay reproducible).
    rng = np.random.default_rng(decimals or 0)
    y = rng.random(3000) < 0.2
    p = rng.random(3000) if decimals is None else np.round(rng.random(3000), decimals)
    auc, sampled = metric_function("roc_auc"), _SampledAuc(y, p)
    for _ in range(50):
        rows = rng.integers(0, 3000, 3000)
        assert sampled(rows) == auc(y[rows], p[rows])
    assert np.isnan(sampled(np.flatnonzero(~y)))  # one class only


def bootstrap_auc_drops(y, p, ref_y, ref_p, groups, ref_groups, samples, seed):
    """The live-vs-reference bootstrap done in full for every sample, both sides drawn in turn
    from one stream (the rule `performance_verdict` implements, without its kept reference)."""
    rng = np.random.default_rng(seed)
    live_auc, held_auc = _SampledAuc(y, p), _SampledAuc(ref_y, ref_p)  # exactly the AUC
    live, held = Resampler(len(y), groups), Resampler(len(ref_y), ref_groups)
    drops = []
    for _ in range(samples):
        c, r = live.draw(rng), held.draw(rng)
        drops.append(held_auc(r) - live_auc(c))
    return np.array(drops)


@pytest.mark.parametrize("by_days", [True, False])
def test_a_kept_reference_gives_the_same_verdicts(by_days):
    # The reference's bootstrap samples are kept between calls (a champion's held-out rows are
    # the same every day): each day's verdict must be the very numbers of a full bootstrap,
    # whatever the live side's rows and number of days, and a different reference is not
    # mistaken for a kept one.
    references = [week(7, 200, seed=50), week(7, 200, seed=51)]
    common = dict(min_rows=100, min_drop=0.01, samples=120)
    for n, (days, seed, which) in enumerate(
        [(7, 1, 0), (7, 2, 0), (6, 1, 0), (7, 1, 1), (7, 3, 0)]
    ):
        y, p, day = week(days, 150, seed=seed, quality=0.6)
        ref_y, ref_p, ref_day = references[which]
        groups = dict(current_groups=day, reference_groups=ref_day) if by_days else {}
        verdict = performance_verdict("roc_auc", y, p, ref_y, ref_p, **common, seed=n % 2, **groups)
        drops = bootstrap_auc_drops(
            y,
            p,
            ref_y,
            ref_p,
            day if by_days else None,
            ref_day if by_days else None,
            120,
            n % 2,
        )
        tail = (1 - 0.95) / 2 * 100  # as the verdict computes it (not exactly 2.5)
        low, high = np.percentile(drops, [tail, 100 - tail])
        assert verdict.status == "ok"
        assert (verdict.low, verdict.high) == (float(low), float(high))
        auc = metric_function("roc_auc")
        assert verdict.reference == auc(ref_y, ref_p) and verdict.current == auc(y, p)


def test_the_auc_of_picked_days_is_the_auc_of_their_rows():
    """`_SampledAuc.of_picks` (from per-day pair counts) gives, bit for bit, the AUC of each
    sample's gathered rows, with tied scores, a day picked several times, and a sample of one
    class only (NaN)."""
    rng = np.random.default_rng(3)
    days = np.repeat(np.arange(6), [40, 1, 55, 30, 70, 25])
    y = (rng.random(len(days)) < 0.3).astype(float)
    y[days == 1] = 1.0  # a one-row day, positive: a sample of it alone has one class
    p = np.round(rng.random(len(days)), 2)  # ties
    auc, resampler = _SampledAuc(y, p), Resampler(len(days), days)
    picks = np.array([resampler.pick(rng) for _ in range(200)] + [[1] * 6])
    fast = auc.of_picks(resampler, picks)
    slow = np.array([auc(resampler.rows_of(pick)) for pick in picks])
    assert np.isnan(fast[-1]) and np.isnan(slow[-1])
    assert fast[:-1].tolist() == slow[:-1].tolist()
    assert auc.of_picks(Resampler(len(days)), picks) is None  # rows, not days: one by one


def reference_paired_drops(metric, y, new_p, old_p, groups, samples, seed):
    """The paired bootstrap as defined: each sample's rows drawn in turn, both models' metric
    computed on them from scratch."""
    rng, score = np.random.default_rng(seed), metric_function(metric)
    same = Resampler(len(y), groups)
    drops = []
    for _ in range(samples):
        s = same.draw(rng)
        drops.append(_worse(metric, score(y[s], new_p[s]), score(y[s], old_p[s])))
    return np.array(drops)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["roc_auc", "brier"])
def test_the_paired_bootstrap_is_the_reference_computation(seed, metric):
    """`paired_verdict`'s drops (days of all samples scored at once from per-day pair counts)
    are, bit for bit, the drops of each drawn sample's rows scored from scratch: random days of
    unequal sizes, tied scores, a day of one class, a model a noisy copy of the other."""
    rng = np.random.default_rng(100 + seed)
    sizes = rng.integers(1, 300, rng.integers(5, 16))
    days = np.repeat(np.datetime64("2013-03-01") + np.arange(len(sizes)), sizes)
    rng.shuffle(days)  # rows of a day need not be together
    y = (rng.random(len(days)) < rng.uniform(0.1, 0.5)).astype(float)
    y[days == days[0]] = 1.0
    old_p = rng.random(len(days))
    new_p = np.clip(old_p + rng.normal(0, 0.2, len(days)), 0, 1)
    if seed % 2:
        new_p, old_p = np.round(new_p, 2), np.round(old_p, 3)  # ties
    samples = int(rng.integers(50, 300))
    fast = _paired_drops(metric, y, new_p, old_p, Resampler(len(y), days), samples, seed)
    slow = reference_paired_drops(metric, y, new_p, old_p, days, samples, seed)
    assert fast.shape == (samples,)
    np.testing.assert_array_equal(fast, slow)  # NaN where a sample has one class, in both
    verdict = paired_verdict(
        metric, y, new_p, old_p, min_rows=1, min_drop=0.0, samples=samples, seed=seed, groups=days
    )
    tail = (1 - verdict.confidence) / 2 * 100
    kept = slow[np.isfinite(slow)]
    assert (verdict.low, verdict.high) == tuple(np.percentile(kept, [tail, 100 - tail]))
    # Rows resampled (no days): drawn and scored one by one, the same definition.
    fast = _paired_drops(metric, y, new_p, old_p, Resampler(len(y)), 20, seed)
    slow = reference_paired_drops(metric, y, new_p, old_p, None, 20, seed)
    np.testing.assert_array_equal(fast, slow)
