"""Is a drop of the primary metric real? Bootstrap confidence intervals (no Dagster).

A 7-day ROC AUC on late labels moves by a few points from week to week on its own; a trigger
on the point value fires on noise. Here a drop counts only when it is *significant* (the lower
end of its bootstrap confidence interval is above zero), *material* (the point drop is at
least `min_drop`) and measured on at least `min_rows` labelled rows.

- `performance_verdict`: the live window against a reference (the champion's held-out rows),
  two independent samples resampled separately.
- `paired_verdict`: two models on the same rows (the deploy guard: new champion against the
  previous one), rows resampled together so their shared difficulty cancels out.

What is resampled is the unit that is independent. Rows of one day are not: events of one
day share its conditions (load, outside events, knock-on effects), so a day's metric moves as a
whole (in `bench/performance_trigger_days.py` a week's metric moves from week to week by
several times what a row bootstrap of it allows). Resampling rows treats 6,000 rows of one week as
6,000 independent draws, its interval is far too narrow, and the trigger fires on an ordinary
hard week. Given `groups` (the row's day), both functions run a cluster bootstrap: they draw
whole days with replacement, so the interval carries the day-to-day variability the metric
really has; a side with fewer than `MIN_GROUPS` days gets no verdict. Without groups each row
is its own group (the row bootstrap, right when rows are independent, as one row a day).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mlops_platform.specs import MIN_GROUPS

HIGHER_IS_BETTER = {"roc_auc", "r2"}


def metric_function(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The metric as a function of (labels, predictions); NaN where it is undefined (an AUC on
    rows of one class)."""
    from scipy.stats import rankdata
    from sklearn import metrics

    def auc(y, p):
        # The Mann-Whitney form of ROC AUC (ties count half, as scikit-learn's): the bootstrap
        # calls it hundreds of times, and roc_auc_score's input checks cost more than this.
        y = np.asarray(y).astype(bool)
        positives = int(y.sum())
        negatives = len(y) - positives
        if positives == 0 or negatives == 0:
            return math.nan
        ranks = rankdata(p)
        return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))

    functions = {
        "roc_auc": auc,
        "brier": lambda y, p: float(np.mean((np.asarray(p) - np.asarray(y)) ** 2)),
        "log_loss": lambda y, p: float(metrics.log_loss(y, p, labels=[0, 1])),
        "mae": lambda y, p: float(np.mean(np.abs(np.asarray(p) - np.asarray(y)))),
        "rmse": lambda y, p: float(np.sqrt(np.mean((np.asarray(p) - np.asarray(y)) ** 2))),
        "r2": lambda y, p: float(metrics.r2_score(y, p)),
    }
    if name not in functions:
        raise ValueError(f"unknown metric {name!r}; one of {sorted(functions)}")
    return functions[name]


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok" or why there is no verdict ("too few labelled rows ...")
    metric: str
    current: float  # the metric live (or of the new model)
    reference: float  # the metric of the reference (or of the previous model)
    drop: float  # how much worse `current` is (positive: worse), in the metric's units
    low: float  # confidence interval of the drop
    high: float
    confidence: float
    rows: int
    min_rows: int
    min_drop: float

    @property
    def significant(self) -> bool:
        """Worse beyond doubt and by at least `min_drop`."""
        return self.status == "ok" and self.low > 0 and self.drop >= self.min_drop

    def describe(self) -> str:
        if self.status != "ok":
            return self.status
        return (
            f"{self.metric} {self.current:.3f} vs {self.reference:.3f}: drop {self.drop:+.3f} "
            f"({self.confidence:.0%} CI {self.low:+.3f}..{self.high:+.3f}, {self.rows} labelled "
            f"rows); {'significant' if self.significant else 'not significant'} "
            f"(needs CI above 0 and a drop of at least {self.min_drop})"
        )


def _worse(metric: str, current: np.ndarray | float, reference: np.ndarray | float):
    return reference - current if metric in HIGHER_IS_BETTER else current - reference


def _no_verdict(status, metric, rows, min_rows, min_drop, confidence) -> Verdict:
    nan = math.nan
    return Verdict(status, metric, nan, nan, nan, nan, nan, confidence, rows, min_rows, min_drop)


def _verdict(metric, current, reference, drops, confidence, rows, min_rows, min_drop) -> Verdict:
    """The verdict of a bootstrap: the point drop of `current` against `reference`, and the
    interval of the resampled `drops`."""
    low, high = _interval(drops, confidence)
    drop = float(_worse(metric, current, reference))
    return Verdict(
        "ok", metric, current, reference, drop, low, high, confidence, rows, min_rows, min_drop
    )


def _too_few_rows(rows: int, min_rows: int) -> str | None:
    return f"too few labelled rows yet ({rows} < {min_rows})" if rows < min_rows else None


def _undefined(metric: str, *values: float) -> str | None:
    if any(math.isnan(v) for v in values):
        return f"{metric} undefined on these rows (one class only?)"
    return None


def _interval(drops: np.ndarray, confidence: float) -> tuple[float, float]:
    drops = drops[np.isfinite(drops)]
    if len(drops) < 10:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(drops, [tail, 100 - tail])
    return float(low), float(high)


def days_of(values) -> np.ndarray:
    """The calendar day of each timestamp (the resampling unit of rows dated by day)."""
    import pandas as pd

    values = pd.Series(values)
    # (a datetime column skips pandas' conversion cache, which samples values one by one)
    cache = not pd.api.types.is_datetime64_any_dtype(values)
    return pd.to_datetime(values, cache=cache).to_numpy(dtype="datetime64[D]")


class _SampledAuc:
    """ROC AUC of bootstrap samples of fixed rows, without a sort per sample: the scores are
    ranked once (codes of their distinct values), and a sample's Mann-Whitney count is read
    from the per-value counts of its positives and negatives. The count is an integer (ties
    count half: twice it is one), so the result is exactly `metric_function("roc_auc")`'s."""

    def __init__(self, y: np.ndarray, p: np.ndarray):
        self.y = np.asarray(y).astype(bool)
        values, self.codes = np.unique(np.asarray(p), return_inverse=True)
        self.distinct = len(values)

    def __call__(self, rows: np.ndarray) -> float:
        y, codes = self.y[rows], self.codes[rows]
        positives = np.bincount(codes[y], minlength=self.distinct)
        negatives = np.bincount(codes[~y], minlength=self.distinct)
        n_pos, n_neg = int(positives.sum()), int(negatives.sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        below = np.cumsum(negatives) - negatives
        twice = 2 * int(positives @ below) + int(positives @ negatives)
        return float(np.float64(twice / 2) / (n_pos * n_neg))

    def of_picks(self, resampler: Resampler, picks: np.ndarray) -> np.ndarray | None:
        """The AUC of each sample of whole groups, `picks` (samples x picked groups), as
        `__call__` gives it for the sample's rows (the same integers, the same float), without
        gathering rows: a sample's positives and negatives per value are sums of its groups'
        (counted as often as picked), so its pair count is a quadratic form in the groups'
        pick counts over one groups x groups matrix of pair counts. None when resampling
        rows, or when the groups x values counts would be large (then sample by sample)."""
        members = resampler.members
        if members is None or len(members) * self.distinct > _MAX_GROUP_VALUES:
            return None
        groups = len(members)
        positives = np.zeros((groups, self.distinct), dtype=np.int64)
        negatives = np.zeros((groups, self.distinct), dtype=np.int64)
        for g, rows in enumerate(members):
            y, codes = self.y[rows], self.codes[rows]
            positives[g] = np.bincount(codes[y], minlength=self.distinct)
            negatives[g] = np.bincount(codes[~y], minlength=self.distinct)
        below = np.cumsum(negatives, axis=1) - negatives
        pairs = 2 * (positives @ below.T) + positives @ negatives.T  # [g, h]: g's positives
        counts = np.zeros((len(picks), groups), dtype=np.int64)
        np.add.at(counts, (np.arange(len(picks))[:, None], picks), 1)
        twice = np.einsum("sg,gh,sh->s", counts, pairs, counts)
        n_pos = counts @ positives.sum(axis=1)
        n_neg = counts @ negatives.sum(axis=1)
        out = np.empty(len(picks))
        for i, (t, p, n) in enumerate(
            zip(twice.tolist(), n_pos.tolist(), n_neg.tolist(), strict=True)
        ):
            out[i] = math.nan if p == 0 or n == 0 else float(np.float64(t / 2) / (p * n))
        return out


#: Above this many (groups x distinct scores) counts, `_SampledAuc.of_picks` samples one by one.
_MAX_GROUP_VALUES = 4_000_000


def _sampled(metric: str, y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], float]:
    """The metric of rows `rows` of (y, p), for bootstrap samples."""
    if metric == "roc_auc" and not np.isnan(np.asarray(p, dtype=float)).any():
        return _SampledAuc(y, p)
    score = metric_function(metric)
    return lambda rows: score(y[rows], p[rows])


class Resampler:
    """Draws bootstrap samples of row indices: whole groups with replacement (a cluster
    bootstrap), or rows when there are no groups."""

    def __init__(self, rows: int, groups: np.ndarray | None = None):
        self.rows = rows
        if groups is None:
            self.members = None
            self.groups = rows
            return
        groups = np.asarray(groups)
        if len(groups) != rows:
            raise ValueError(f"{len(groups)} group labels for {rows} rows")
        _, inverse = np.unique(groups, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.members = np.split(order, bounds)
        self.groups = len(self.members)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return self.rows_of(self.pick(rng))

    def pick(self, rng: np.random.Generator) -> np.ndarray:
        """One sample's picks (groups, or rows when there are no groups): what `draw` takes
        from `rng`, without gathering the rows."""
        if self.members is None:
            return rng.integers(0, self.rows, self.rows)
        return rng.integers(0, self.groups, self.groups)

    def rows_of(self, picked: np.ndarray) -> np.ndarray:
        if self.members is None:
            return picked
        return np.concatenate([self.members[g] for g in picked])

    @property
    def shape(self) -> tuple[bool, int]:
        """What the draws take from the random stream depends on only this."""
        return self.members is None, self.groups


def _too_few_groups(*resamplers: Resampler) -> str | None:
    for side, resampler in zip(("live window", "reference"), resamplers, strict=False):
        if resampler.members is not None and resampler.groups < MIN_GROUPS:
            return (
                f"too few days in the {side} for a day-block bootstrap "
                f"({resampler.groups} < {MIN_GROUPS})"
            )
    return None


def performance_verdict(
    metric: str,
    current_y: np.ndarray,
    current_p: np.ndarray,
    reference_y: np.ndarray,
    reference_p: np.ndarray,
    *,
    min_rows: int,
    min_drop: float,
    confidence: float = 0.95,
    samples: int = 500,
    seed: int = 0,
    current_groups: np.ndarray | None = None,
    reference_groups: np.ndarray | None = None,
) -> Verdict:
    """The live window's metric against the reference's, each resampled with replacement:
    by whole groups (days) where groups are given, else by rows."""
    current_y, current_p = np.asarray(current_y), np.asarray(current_p)
    rows = len(current_y)
    why = _too_few_rows(rows, min_rows) or ("no reference rows" if len(reference_y) == 0 else None)
    if why is None:
        score = metric_function(metric)
        side = _reference_side(metric, reference_y, reference_p, reference_groups)
        current, reference = score(current_y, current_p), side.metric
        live, held = Resampler(rows, current_groups), side.resampler
        why = _undefined(metric, current, reference) or _too_few_groups(live, held)
    if why is not None:
        return _no_verdict(why, metric, rows, min_rows, min_drop, confidence)
    rng = np.random.default_rng(seed)
    drops = np.empty(samples)
    live_metric = _sampled(metric, current_y, current_p)
    held_metrics = side.sampled.get((seed, samples, live.shape))
    fresh = held_metrics is None
    if fresh:
        held_metrics = np.empty(samples)
        held_metric = _sampled(metric, side.y, side.p)
    # Picked days are scored all at once where the metric can (`of_picks`); picked rows are
    # scored sample by sample, as drawn (keeping every sample's rows would hold samples x rows).
    by_picks = getattr(live_metric, "of_picks", None)
    grouped = by_picks is not None and live.members is not None and samples > 0
    picks, values = [], np.empty(samples)
    # The draws stay in this order (live, then reference, sample by sample): the same stream.
    for i in range(samples):
        c, r = live.pick(rng), held.pick(rng)
        if fresh:
            held_metrics[i] = held_metric(held.rows_of(r))
        if grouped:
            picks.append(c)
        else:
            values[i] = live_metric(live.rows_of(c))
    if grouped:
        values = by_picks(live, np.array(picks))
    for i in range(samples):
        drops[i] = _worse(metric, values[i], held_metrics[i])
    if fresh:
        side.sampled[(seed, samples, live.shape)] = held_metrics
    return _verdict(metric, current, reference, drops, confidence, rows, min_rows, min_drop)


@dataclass
class _ReferenceSide:
    """The reference's side of `performance_verdict`: its metric, its resampler and its
    metric on each bootstrap sample. Those samples depend only on the seed, the number of
    samples and what the live side's draws take from the random stream (`Resampler.shape`:
    its number of days), not on the live rows, so a champion's held-out rows are resampled
    once, not every day: the verdicts are the same numbers."""

    y: np.ndarray
    p: np.ndarray
    metric: float
    resampler: Resampler
    #: (seed, samples, live side's shape) -> the reference's metric on each sample, in order
    sampled: dict = field(default_factory=dict)


#: The last few references (a champion's held-out rows), by their content.
_REFERENCES: OrderedDict[tuple, _ReferenceSide] = OrderedDict()
_KEPT_REFERENCES = 4


def _reference_side(metric: str, y, p, groups) -> _ReferenceSide:
    """The reference side of these rows, the one kept if the same rows (labels, scores and
    groups, byte for byte) were seen with this metric."""
    y, p = np.asarray(y), np.asarray(p)
    groups = None if groups is None else np.asarray(groups)
    digest = hashlib.sha256()
    for part in (y, p, *([] if groups is None else [groups])):
        digest.update(f"{part.dtype.str}{part.shape}".encode())
        digest.update(np.ascontiguousarray(part).tobytes())
    key = (metric, groups is None, digest.hexdigest())
    side = _REFERENCES.get(key)
    if side is None:
        # Copies: the caller's arrays may change after this; the kept side must not.
        y, p = y.copy(), p.copy()
        score = metric_function(metric)(y, p)
        side = _ReferenceSide(y, p, score, Resampler(len(y), groups))
        _REFERENCES[key] = side
        while len(_REFERENCES) > _KEPT_REFERENCES:
            _REFERENCES.popitem(last=False)
    _REFERENCES.move_to_end(key)
    return side


def paired_verdict(
    metric: str,
    y: np.ndarray,
    new_p: np.ndarray,
    old_p: np.ndarray,
    *,
    min_rows: int,
    min_drop: float,
    confidence: float = 0.95,
    samples: int = 500,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Verdict:
    """How much worse `new_p` is than `old_p` on the same labelled rows (paired bootstrap, by
    whole groups (days) where groups are given)."""
    y, new_p, old_p = np.asarray(y), np.asarray(new_p), np.asarray(old_p)
    rows = len(y)
    why = _too_few_rows(rows, min_rows)
    if why is None:
        score = metric_function(metric)
        new, old = score(y, new_p), score(y, old_p)
        same = Resampler(rows, groups)
        why = _undefined(metric, new, old) or _too_few_groups(same)
    if why is not None:
        return _no_verdict(why, metric, rows, min_rows, min_drop, confidence)
    drops = _paired_drops(metric, y, new_p, old_p, same, samples, seed)
    return _verdict(metric, new, old, drops, confidence, rows, min_rows, min_drop)


def _paired_drops(metric, y, new_p, old_p, same: Resampler, samples: int, seed: int):
    """How much worse `new_p` is than `old_p` on each bootstrap sample of `same`: what
    `_worse` gives for the metric of each sample's rows (`same.draw`), drawn in order from
    `default_rng(seed)`."""
    rng = np.random.default_rng(seed)
    new_metric, old_metric = _sampled(metric, y, new_p), _sampled(metric, y, old_p)
    if same.members is None:
        # Picked rows are scored sample by sample, as drawn (not samples x rows kept).
        drops = np.empty(samples)
        for i in range(samples):
            s = same.draw(rng)
            drops[i] = _worse(metric, new_metric(s), old_metric(s))
        return drops
    # The same draws (`draw` is `rows_of(pick(...))`); the days of all samples scored at once
    # where the metric can (`of_picks`, from per-day pair counts): the same numbers.
    picks = np.array([same.pick(rng) for _ in range(samples)]).reshape(samples, same.groups)
    return _worse(metric, _of_picks(new_metric, same, picks), _of_picks(old_metric, same, picks))


def _of_picks(sampled, resampler: Resampler, picks: np.ndarray) -> np.ndarray:
    """The metric `sampled` of each sample of whole groups (`picks`: samples x groups)."""
    by_picks = getattr(sampled, "of_picks", None)
    values = by_picks(resampler, picks) if by_picks is not None else None
    if values is None:
        values = np.array([sampled(resampler.rows_of(p)) for p in picks], dtype=float)
    return values
