"""Issue 13's targets for the default policy, checked on a backtest's outcome (pure).

- it beats static in every period;
- it matches or beats the fixed cadence with gate in at least 80% of the periods (8 of 10
  months) and is never more than 0.01 below it;
- with at most 60% of its retrains.

"Matches" means equal at the table's precision: no more than `MATCH` below.
"""

from __future__ import annotations

import math

MATCH = 0.0005
MAX_BELOW = 0.01
SHARE_OF_PERIODS = 0.8
SHARE_OF_RETRAINS = 0.6


def check_targets(outcome, default: str = "default", static: str = "static") -> list[str]:
    """One line per target, each saying met or NOT met with the numbers."""
    gated = next((p for p in outcome.policies if p.endswith("+ gate")), None)
    metrics = outcome.metrics.dropna(subset=[default, static, *([gated] if gated else [])])
    sign = 1 if outcome.spec.higher_is_better else -1
    lines = [f"\ntargets ({default} policy, {len(metrics)} {outcome.period}s):"]
    beats = sign * (metrics[default] - metrics[static]) > 0
    lines.append(
        _line(
            bool(beats.all()) and len(metrics) > 0,
            f"beats {static} every {outcome.period}: {int(beats.sum())} of {len(metrics)}"
            + (f" (not in {', '.join(metrics.index[~beats])})" if (~beats).any() else ""),
        )
    )
    if gated is None:
        return lines
    gap = sign * (metrics[default] - metrics[gated])
    matched = gap >= -MATCH
    needed = math.ceil(SHARE_OF_PERIODS * len(metrics))
    lines.append(
        _line(
            int(matched.sum()) >= needed,
            f"matches or beats '{gated}' in {int(matched.sum())} of {len(metrics)} "
            f"{outcome.period}s (needs {needed})",
        )
    )
    worst = float(gap.min()) if len(gap) else math.nan
    lines.append(
        _line(
            worst >= -MAX_BELOW,
            f"never more than {MAX_BELOW} below it: worst {worst:+.4f}"
            + (f" ({gap.idxmin()})" if len(gap) else ""),
        )
    )
    counts = outcome.retrains["policy"].value_counts()
    mine, theirs = int(counts.get(default, 0)), int(counts.get(gated, 0))
    lines.append(
        _line(
            theirs > 0 and mine <= SHARE_OF_RETRAINS * theirs,
            f"at most {SHARE_OF_RETRAINS:.0%} of its retrains: {mine} vs {theirs}"
            + (f" ({mine / theirs:.0%})" if theirs else ""),
        )
    )
    return lines


def _line(met: bool, text: str) -> str:
    return f"  [{'met' if met else 'NOT met'}] {text}"
