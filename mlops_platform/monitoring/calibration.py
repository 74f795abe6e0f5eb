"""Calibrated drift thresholds: how far the reference drifts from itself (no Dagster).

A drift statistic between a week of production and months of training data is never zero: one
week has its own conditions. A fixed threshold (PSI 0.2 for every column, whatever the window)
therefore either fires every day or never. Here each column's threshold comes from the
reference's own variability for a window of the same length: the same statistic (Evidently's
implementation of the spec's method) between each window of `window_days` days of the
reference and the rest of it. The quantile is chosen so that at most `target_rate` of those
windows would raise the alarm, and that rate is reported with every alarm.

The alarm rule (`alarm`) is the one the drift report applies: more than `share_threshold` of the
monitored features beyond their thresholds, or the prediction (score) or the label distribution
beyond its own. Evidently stays the engine: the thresholds are handed to it per column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

#: Null quantile levels tried, most sensitive first; 1.0 is the largest value seen.
LEVELS = (0.9, 0.95, 0.975, 0.99, 1.0)


def statistic(method: str, reference: pd.Series, current: pd.Series, categorical: bool) -> float:
    """The drift statistic Evidently computes for one column (NaN and infinities dropped, as
    Evidently does); NaN when one side has no value at all. PSI is computed here with numpy,
    exactly as Evidently's implementation does (tested against it): calibration computes it
    thousands of times, and Evidently's per-call overhead is tens of milliseconds."""
    reference, current = _finite(reference), _finite(current)
    if reference.empty or current.empty:
        return math.nan
    if method == "psi":
        return _psi(reference, current, categorical)
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    test = get_stattest(reference, current, kind, method)
    return float(test(reference, current, kind, 0.0).drift_score)


def _finite(series: pd.Series) -> pd.Series:
    """The values Evidently compares: NaN and infinities dropped."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float)
        return pd.Series(values[np.isfinite(values)])
    return series.dropna()


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    # Evidently's `feel_zeroes`: an empty bin gets a tiny share, so the log stays finite.
    nonzero = percents[percents != 0]
    if not len(nonzero):
        return percents
    smallest = nonzero.min()
    filled = percents.copy()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def psi_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    reference = _fill_zeroes(reference_counts / reference_counts.sum())
    current = _fill_zeroes(current_counts / current_counts.sum())
    return float(np.sum((reference - current) * np.log(reference / current)))


def _binned(reference: pd.Series, categorical: bool) -> bool:
    """Evidently bins a numerical column with more than 20 distinct values (Sturges' rule on
    both samples together); anything else is compared value by value."""
    return not categorical and len(pd.unique(reference.to_numpy())) > 20


def _psi(reference: pd.Series, current: pd.Series, categorical: bool) -> float:
    if _binned(reference, categorical):
        edges = np.histogram_bin_edges(
            np.concatenate([reference.to_numpy(float), current.to_numpy(float)]), bins="sturges"
        )
        return psi_from_counts(
            np.histogram(reference.to_numpy(float), edges)[0],
            np.histogram(current.to_numpy(float), edges)[0],
        )
    both = np.concatenate([reference.to_numpy(), current.to_numpy()])
    try:
        keys, inverse = np.unique(both, return_inverse=True)
    except TypeError:  # values numpy cannot order (mixed types): count them with pandas
        keys = None
    if keys is not None:
        counts = np.bincount(inverse[: len(reference)], minlength=len(keys)).astype(float)
        current_counts = np.bincount(inverse[len(reference) :], minlength=len(keys))
        return psi_from_counts(counts, current_counts.astype(float))
    keys = pd.unique(pd.Series(both))
    return psi_from_counts(
        reference.value_counts().reindex(keys, fill_value=0).to_numpy(float),
        current.value_counts().reindex(keys, fill_value=0).to_numpy(float),
    )


def window_statistics(
    method: str, column: pd.Series, windows: list[np.ndarray], categorical: bool
) -> np.ndarray:
    """The statistic between each window (row positions) and the rest of `column`.

    For PSI the rest and the window together are the whole column, so the bins (or values)
    are the same for every window: counted once, then per window."""
    values = column.replace([np.inf, -np.inf], np.nan)
    out = np.full(len(windows), np.nan)
    if method != "psi":
        everything = np.ones(len(values), dtype=bool)
        for i, rows in enumerate(windows):
            rest = everything.copy()
            rest[rows] = False
            out[i] = statistic(method, values[rest], values.iloc[rows], categorical)
        return out
    present = values.notna().to_numpy()
    if not present.any():
        return out
    if _binned(values.dropna(), categorical):
        numbers = values.to_numpy(float)
        edges = np.histogram_bin_edges(numbers[present], bins="sturges")
        codes = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, len(edges) - 2)
        size = len(edges) - 1
    else:
        codes, uniques = pd.factorize(values)
        size = len(uniques)
    codes = np.where(present, codes, -1)
    total = np.bincount(codes[present], minlength=size).astype(float)
    for i, rows in enumerate(windows):
        mine = codes[rows]
        mine = mine[mine >= 0]
        if not len(mine) or len(mine) == total.sum():
            continue
        window = np.bincount(mine, minlength=size).astype(float)
        out[i] = psi_from_counts(total - window, window)
    return out


def window_is_full(days_present: Iterable, window_days: int) -> bool:
    """A window is evaluated only once every one of its days has data (no one-day "week")."""
    return len(set(days_present)) >= window_days


def reference_windows(
    dates: pd.Series | None,
    window_days: int,
    max_windows: int,
    *,
    window_rows: int | None = None,
    seed: int = 0,
) -> tuple[str, list[np.ndarray]]:
    """Positions of the reference's own windows: (kind, [row positions]).

    With dates spanning at least two windows: every run of `window_days` consecutive days,
    evenly thinned to `max_windows` ("time windows": they keep the day-to-day correlation a
    real window has). Otherwise `max_windows` random samples of `window_rows` rows ("row
    samples", a permutation null)."""
    if dates is not None:
        days = pd.to_datetime(dates).dt.normalize().to_numpy()
        unique = np.unique(days)
        if len(unique) >= 2 * window_days:
            span = np.timedelta64(window_days, "D")
            starts = [d for d in unique if d + span - np.timedelta64(1, "D") <= unique[-1]]
            if len(starts) > max_windows:
                picks = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
                starts = [starts[i] for i in sorted(set(picks))]
            windows = [np.flatnonzero((days >= s) & (days < s + span)) for s in starts]
            return "time windows", [w for w in windows if len(w)]
        n = len(days)
    else:
        raise ValueError("reference_windows needs dates, or window_rows for row samples")
    rows = window_rows or max(1, n // 4)
    if rows >= n:
        raise ValueError(f"cannot calibrate: {n} reference rows for windows of {rows} rows")
    rng = np.random.default_rng(seed)
    return "row samples", [
        np.sort(rng.choice(n, size=rows, replace=False)) for _ in range(max_windows)
    ]


@dataclass(frozen=True)
class Calibration:
    """Per-column thresholds and the false-alarm rate they give on the reference's windows."""

    method: str
    window_days: int
    kind: str
    windows: int
    level: float  # quantile of each column's null distribution used as its threshold
    thresholds: dict[str, float]
    share_columns: list[str]  # the features whose share decides feature drift
    own_columns: list[str]  # columns that alarm on their own (score, label)
    share_threshold: float
    target_rate: float
    alarming_windows: int
    null_median: dict[str, float] = field(default_factory=dict)

    @property
    def false_alarm_rate(self) -> float:
        """Estimated rate of alarms on a window like the reference's own: (k + 1) / (n + 1),
        k of n reference windows alarming (conservative, as a permutation p-value)."""
        return (self.alarming_windows + 1) / (self.windows + 1)

    def describe(self) -> str:
        level = "the largest value" if self.level >= 1 else f"the {self.level:.3g} quantile"
        return (
            f"thresholds at {level} of {self.windows} reference {self.kind} of "
            f"{self.window_days} days; estimated false-alarm rate "
            f"{self.false_alarm_rate:.3f} per window ({self.alarming_windows} of "
            f"{self.windows} reference windows alarm)"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls(**json.loads(text))


def alarm(
    values: dict[str, float],
    thresholds: dict[str, float],
    share_columns: list[str],
    own_columns: list[str],
    share_threshold: float,
) -> tuple[float, list[str], list[str]]:
    """(feature drift share, drifted features, alarm reasons). A column drifts when its value
    exceeds its threshold; columns with no value (NaN) are left out of the share."""
    compared = [c for c in share_columns if not math.isnan(values.get(c, math.nan))]
    drifted = [c for c in compared if values[c] > thresholds[c]]
    share = len(drifted) / len(compared) if compared else 0.0
    reasons = []
    if share > share_threshold:
        reasons.append("features")
    reasons += [
        c
        for c in own_columns
        if not math.isnan(values.get(c, math.nan)) and values[c] > thresholds[c]
    ]
    return share, drifted, reasons


def calibrate(
    reference: pd.DataFrame,
    columns: dict[str, bool],
    *,
    method: str,
    window_days: int,
    share_columns: list[str],
    own_columns: list[str],
    share_threshold: float,
    target_rate: float,
    floors: dict[str, float] | None = None,
    dates: pd.Series | None = None,
    max_windows: int = 60,
    window_rows: int | None = None,
) -> Calibration:
    """Thresholds for `columns` ({name: categorical?}) from windows of the reference.

    For each window, the statistic between the window and the rest of the reference; for
    each column its threshold is the quantile (the lowest of `LEVELS` whose alarm rate on the
    windows is at most `target_rate`) of those values, and never below `floors[column]` (a
    minimum effect size)."""
    floors = floors or {}
    kind, windows = reference_windows(dates, window_days, max_windows, window_rows=window_rows)
    if len(windows) < 5:
        raise ValueError(f"cannot calibrate on {len(windows)} reference windows (need 5)")
    reference = reference.reset_index(drop=True)
    null = {
        c: window_statistics(method, reference[c], windows, categorical)
        for c, categorical in columns.items()
    }
    chosen = None
    for level in LEVELS:
        thresholds = {c: max(_quantile(null[c], level), floors.get(c, 0.0)) for c in columns}
        alarming = sum(
            bool(
                alarm(
                    {c: null[c][i] for c in columns},
                    thresholds,
                    share_columns,
                    own_columns,
                    share_threshold,
                )[2]
            )
            for i in range(len(windows))
        )
        chosen = (level, thresholds, alarming)
        if alarming / len(windows) <= target_rate:
            break
    level, thresholds, alarming = chosen
    return Calibration(
        method=method,
        window_days=window_days,
        kind=kind,
        windows=len(windows),
        level=level,
        thresholds={c: float(t) for c, t in thresholds.items()},
        share_columns=list(share_columns),
        own_columns=list(own_columns),
        share_threshold=share_threshold,
        target_rate=target_rate,
        alarming_windows=int(alarming),
        null_median={
            c: float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan for c, v in null.items()
        },
    )


def _quantile(values: np.ndarray, level: float) -> float:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.inf  # never compared on the reference: cannot say what is normal
    return float(np.quantile(finite, level, method="higher"))
