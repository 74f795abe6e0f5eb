"""The drift statistic of a model's reference against each day's window, with the reference's
side prepared once per model and column (the walk compares the same reference with a new
window every day, for two policies).

PSI exactly as `monitoring.calibration.statistic` computes it (the same bins or values, counts
and sum, in the same order: the same floats, tested equal); any other method, and values numpy
cannot order, go through `statistic` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_platform.monitoring.calibration import _binned, _finite, psi_from_counts, statistic


@dataclass(frozen=True)
class ReferenceColumn:
    """One reference column as PSI reads it: its finite values, whether it is binned and, when
    compared value by value, its sorted distinct values and their counts."""

    series: pd.Series  # as given (for `statistic`)
    values: pd.Series  # finite
    categorical: bool
    binned: bool
    numbers: np.ndarray | None  # binned: the values as floats
    keys: np.ndarray | None  # value by value: sorted distinct values (None: not orderable)
    counts: np.ndarray | None

    @classmethod
    def of(cls, series: pd.Series, categorical: bool) -> ReferenceColumn:
        values = _finite(series)
        binned = not values.empty and _binned(values, categorical)
        numbers = values.to_numpy(float) if binned else None
        keys = counts = None
        if not values.empty and not binned:
            try:
                keys, counts = np.unique(values.to_numpy(), return_counts=True)
            except TypeError:  # mixed types: `statistic` counts them with pandas
                pass
        return cls(series, values, categorical, binned, numbers, keys, counts)

    def statistic(self, method: str, current: pd.Series) -> float:
        """`calibration.statistic(method, reference, current, categorical)`."""
        if method != "psi" or (not self.binned and self.keys is None):
            return statistic(method, self.series, current, self.categorical)
        mine = _finite(current)
        if self.values.empty or mine.empty:
            return math.nan
        if self.binned:
            numbers = mine.to_numpy(float)
            edges = np.histogram_bin_edges(np.concatenate([self.numbers, numbers]), bins="sturges")
            return psi_from_counts(
                np.histogram(self.numbers, edges)[0], np.histogram(numbers, edges)[0]
            )
        try:
            keys, counts = np.unique(mine.to_numpy(), return_counts=True)
            both = np.union1d(self.keys, keys)
        except TypeError:
            return statistic(method, self.series, current, self.categorical)
        reference = np.zeros(len(both))
        reference[np.searchsorted(both, self.keys)] = self.counts
        window = np.zeros(len(both))
        window[np.searchsorted(both, keys)] = counts
        return psi_from_counts(reference, window)
