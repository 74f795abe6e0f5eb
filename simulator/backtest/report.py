"""The backtest's table, targets and plot, from the walk's logged scores and retrains."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_platform.markdown import markdown_table
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.model.metrics import compute_metrics
from mlops_platform.specs import ModelSpec
from simulator.backtest.walk import Walk

#: Labelled rows a period needs before its metric is shown.
MIN_PERIOD_ROWS = 50


@dataclass
class Outcome:
    """What a backtest found: per period and policy the primary metric and retrains; per
    policy its retrains and the seconds it would have cost on its own."""

    spec: ModelSpec
    period: str  # "month" or "year"
    policies: list[str]
    metrics: pd.DataFrame  # index: period; columns: policies
    retrains: pd.DataFrame  # one row per retrain (policy, day, reason, model, gate, replaced)
    seconds: pd.DataFrame  # index: policy; columns: train, gate, monitor, total
    walk_seconds: float
    note: str = ""

    def counts(self) -> pd.DataFrame:
        """Retrains (trainings started) per period and policy."""
        frame = self.retrains.assign(period=_period_of(self.retrains["day"], self.period))
        counts = frame.groupby(["period", "policy"]).size().unstack(fill_value=0)
        return counts.reindex(index=self.metrics.index, columns=self.policies, fill_value=0)

    def table(self) -> str:
        metric, counts = self.spec.gate.primary_metric, self.counts()
        rows = []
        for period in self.metrics.index:
            row = {self.period: period}
            for policy in self.policies:
                row[policy] = (
                    f"{_fmt(self.metrics.at[period, policy])} ({counts.at[period, policy]})"
                )
            rows.append(row)
        totals = {self.period: f"all: {metric} (retrains)"}
        replaced = {self.period: "models replaced"}
        cost = {self.period: "compute s (train/gate/monitor)"}
        for policy in self.policies:
            mine = self.retrains[self.retrains["policy"] == policy]
            totals[policy] = f"{_fmt(self.overall[policy])} ({len(mine)})"
            replaced[policy] = str(int(mine["replaced"].sum()))
            s = self.seconds.loc[policy]
            cost[policy] = f"{s['total']:.0f} ({s['train']:.0f}/{s['gate']:.0f}/{s['monitor']:.0f})"
        return markdown_table([*rows, totals, replaced, cost])

    overall: dict | None = None

    def csv_frame(self) -> pd.DataFrame:
        counts = self.counts()
        frame = self.metrics.copy()
        for policy in self.policies:
            frame[f"{policy} retrains"] = counts[policy]
        return frame.reset_index()

    def save(self, folder: Path, name: str = "backtest") -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": folder / f"{name}.md",
            "csv": folder / f"{name}.csv",
            "plot": folder / f"{name}.png",
            "retrains": folder / f"{name}-retrains.csv",
        }
        metric = self.spec.gate.primary_metric
        paths["markdown"].write_text(
            f"# {self.spec.name}: which retraining policy pays (backtest)\n\n"
            f"{self.note}\n\n{metric} per {self.period} on every labelled row, and in brackets the "
            f"retrains started that {self.period}.\n\n{self.table()}\n\n"
            f"Walk: {self.walk_seconds / 60:.1f} min.\n\n## Retrains\n\n"
            + markdown_table(
                [{k: str(v)[:90] for k, v in r.items()} for r in self.retrains.to_dict("records")]
            )
            + "\n"
        )
        self.csv_frame().to_csv(paths["csv"], index=False)
        self.retrains.to_csv(paths["retrains"], index=False)
        plot(self, paths["plot"])
        return paths


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def _period_of(days, period: str) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(days))
    return stamps.dt.strftime("%Y-%m" if period == "month" else "%Y")


def _metric(spec: ModelSpec, y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < MIN_PERIOD_ROWS or (spec.task == "classification" and len(np.unique(y)) < 2):
        return math.nan
    return compute_metrics(spec, y, p)[spec.gate.primary_metric]


def summarise(result: Walk, period: str, note: str = "") -> Outcome:
    """Per period and policy, the primary metric of the scores it logged against the final
    labels (rows never labelled, such as cancelled flights, are left out)."""
    spec, table = result.history.spec, result.history.table
    scored = ~np.isnan(result.lanes[0].scores)
    labelled = scored & table[LABEL].notna().to_numpy()
    periods = _period_of(table[EVENT_DATE], period).to_numpy()
    y = table[LABEL].to_numpy()
    policies = [lane.policy.name for lane in result.lanes]
    index = sorted(set(periods[labelled]))
    metrics = pd.DataFrame(index=pd.Index(index, name=period), columns=policies, dtype=float)
    overall = {}
    for lane in result.lanes:
        for key in index:
            rows = labelled & (periods == key)
            metrics.at[key, lane.policy.name] = _metric(spec, y[rows], lane.scores[rows])
        overall[lane.policy.name] = _metric(spec, y[labelled], lane.scores[labelled])
    retrains = pd.DataFrame(
        [asdict(r) for lane in result.lanes for r in lane.retrains],
        columns=["policy", "day", "reason", "model", "train_end", "gate", "replaced"],
    )
    seconds = pd.DataFrame({lane.policy.name: lane.seconds for lane in result.lanes}).T
    seconds["total"] = seconds.sum(axis=1)
    outcome = Outcome(spec, period, policies, metrics, retrains, seconds, result.seconds, note)
    outcome.overall = overall
    return outcome


def plot(outcome: Outcome, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    metric = outcome.spec.gate.primary_metric
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    starts = pd.to_datetime(outcome.metrics.index)
    offset = pd.DateOffset(months=1) if outcome.period == "month" else pd.DateOffset(years=1)
    middles = starts + (starts + offset - starts) / 2
    colours = plt.get_cmap("tab10").colors
    for i, policy in enumerate(outcome.policies):
        top.plot(
            middles,
            outcome.metrics[policy],
            marker="o",
            color=colours[i],
            label=policy,
            linewidth=2.2 if policy == "default" else 1.3,
        )
        mine = outcome.retrains[outcome.retrains["policy"] == policy]
        days = pd.to_datetime(mine["day"])
        kept = mine["replaced"].astype(bool).to_numpy()
        bottom.scatter(days[kept], [i] * int(kept.sum()), marker="|", s=160, color=colours[i])
        bottom.scatter(
            days[~kept], [i] * int((~kept).sum()), marker="x", s=30, color=colours[i], alpha=0.6
        )
    top.set_ylabel(f"{metric} per {outcome.period}")
    top.set_title(f"{outcome.spec.name}: retraining policies backtested on the same rows")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # off the lines
    top.grid(alpha=0.3)
    bottom.set_yticks(range(len(outcome.policies)), outcome.policies, fontsize=8)
    bottom.set_ylim(-0.7, len(outcome.policies) - 0.3)
    bottom.set_title("retrains: | model replaced, x kept (gate failed)", fontsize=9)
    bottom.grid(alpha=0.3, axis="x")
    locator = mdates.MonthLocator() if outcome.period == "month" else mdates.YearLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(
        mdates.DateFormatter("%b %Y" if outcome.period == "month" else "%Y")
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
