"""How numbers read in the Dagster UI: metadata floats rounded to what a reader compares
(four decimals; NaN and infinities kept), so `0.6402955320703536` shows as `0.6403`.

Assets and checks pass their metadata through `rounded` where they return it; the values
they compute with and store elsewhere (warehouse, MLflow) keep full precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DIGITS = 4


def rounded(metadata: Mapping[str, Any], digits: int = DIGITS) -> dict[str, Any]:
    """`metadata` with every plain float (numpy floats included) rounded to `digits` decimals;
    other values (ints, bools, strings, Dagster `MetadataValue`s) unchanged."""
    return {key: _round(value, digits) for key, value in metadata.items()}


def _round(value: Any, digits: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, float | _numpy_float()):
        return value
    value = float(value)
    return value if not math.isfinite(value) else round(value, digits)


def _numpy_float() -> type:
    import numpy as np

    return np.floating
