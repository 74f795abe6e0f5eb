"""What a replay did, month by month or year by year, read back from where the platform keeps it.

Scores come from `scores.<spec>` (each row carries the version that was live when it was
scored), labels from `features.<spec>`, drift from the `<spec>/drift` materializations
(`instance.fetch_materializations`), retrains from the `train_<spec>` run records and their
tags, each one's gate verdict from its version's tags in MLflow, and its promotion from the
audit log. The static
model is the first champion ever promoted (the bootstrap model), scored on the same rows.
Nothing here is computed during the replay, so the report can be rebuilt at any time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mlops_platform.domains import domain_for
from mlops_platform.markdown import markdown_table
from mlops_platform.model import tags as t
from mlops_platform.model.columns import EVENT_DATE, LABEL, MODEL_VERSION, SCORE
from mlops_platform.model.metrics import compute_metrics
from mlops_platform.model.predict import predict
from mlops_platform.registry.promotion import audit_log
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.resources import Warehouse


@dataclass
class Retrain:
    monitored_day: str
    trigger: str
    reason: str
    run_id: str
    version: str
    gate_passed: bool | None
    failed_checks: str
    promoted: bool
    holdout_metric: float | None


def _metric(spec: ModelSpec, frame: pd.DataFrame, column: str) -> float:
    labelled = frame[frame[LABEL].notna()]
    if len(labelled) < 50 or (spec.task == "classification" and labelled[LABEL].nunique() < 2):
        return float("nan")
    return compute_metrics(spec, labelled[LABEL].to_numpy(), labelled[column].to_numpy())[
        spec.gate.primary_metric
    ]


def static_version(warehouse: Warehouse, spec: ModelSpec) -> str | None:
    """The first version ever made champion: the model a team without the loop would keep."""
    log = audit_log(warehouse, spec.name)
    first = log[(log["alias"] == CHAMPION) & log["to_version"].notna()]
    return None if first.empty else str(first.iloc[0]["to_version"])


def scored_rows(
    warehouse: Warehouse, registry: ModelRegistry, spec: ModelSpec, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Every scored row (flight, station day) from `start` to `end` with its label, the live
    score, and the score the static model gives it."""
    window = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{end}'"
    scores = warehouse.read_table("scores", spec.name, where=window)
    features = warehouse.read_table("features", spec.name, where=window)
    key = list(domain_for(spec).entity_key)
    rows = scores[[*key, SCORE, MODEL_VERSION]].merge(features, on=key, how="inner")
    static = static_version(warehouse, spec)
    if static is not None and len(rows):
        model = registry.load_verified(spec.name, static)
        rows["static_score"] = predict(model, rows, spec)
    else:
        rows["static_score"] = np.nan
    rows["day"] = pd.to_datetime(rows[EVENT_DATE]).dt.date
    return rows


def drift_by_day(instance: dg.DagsterInstance, spec: ModelSpec) -> pd.DataFrame:
    records = instance.fetch_materializations(
        dg.AssetKey([spec.name, "drift"]), limit=10_000
    ).records
    rows = {}
    for record in records:  # newest first: keep the latest per partition
        m = record.event_log_entry.asset_materialization
        if m.partition and m.partition not in rows:
            meta = {k: v.value for k, v in m.metadata.items()}
            rows[m.partition] = {
                "day": dt.date.fromisoformat(m.partition),
                "drift_share": meta.get("drift_share"),
                "prediction_drift": meta.get("prediction_drift"),
                "drift_seconds": meta.get("seconds"),
                "drifted_features": meta.get("drifted_features"),
            }
    return pd.DataFrame(
        list(rows.values()) or None,
        columns=["day", "drift_share", "prediction_drift", "drift_seconds", "drifted_features"],
    )


def retrains(
    instance: dg.DagsterInstance, warehouse: Warehouse, registry: ModelRegistry, spec: ModelSpec
) -> list[Retrain]:
    """Every retraining run the sensor started (Dagster run records and their tags), with its
    gate verdict (the tags the gate wrote on the version it trained, in MLflow) and whether it
    promoted (the audit log)."""
    versions = {}
    for mv in registry.client.search_model_versions(f"name = '{spec.name}'"):
        if run_id := (mv.tags or {}).get(t.DAGSTER_RUN_ID):
            versions[run_id] = (str(mv.version), mv.tags)
    log = audit_log(warehouse, spec.name)
    promotions = log[(log["alias"] == CHAMPION) & log["to_version"].notna()]
    found = []
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=f"train_{spec.name}"))
    for record in reversed(records):  # oldest first
        run = record.dagster_run
        if t.RUN_TRIGGER not in run.tags:
            continue
        version, tags = versions.get(run.run_id, ("", {}))
        gate = {"true": True, "false": False}.get(tags.get(t.GATE_PASSED, ""))
        summary = json.loads(tags.get(t.GATE_SUMMARY) or "{}")
        metric = (summary.get("metrics") or {}).get(spec.gate.primary_metric)
        promoted = bool(
            version
            and (
                (promotions["to_version"] == version) & (promotions["dagster_run_id"] == run.run_id)
            ).any()
        )
        found.append(
            Retrain(
                run.tags.get(t.RUN_MONITORED_DAY, ""),
                run.tags[t.RUN_TRIGGER],
                run.tags.get(t.RUN_REASON, ""),
                run.run_id,
                version,
                gate,
                ", ".join(summary.get("failed_checks") or []),
                promoted,
                float(metric) if metric is not None else None,
            )
        )
    return found


#: How a report groups its rows: the period's label from a datetime series.
PERIODS = {"month": "%Y-%m", "year": "%Y"}


@dataclass
class Report:
    spec: ModelSpec
    daily: pd.DataFrame
    #: One row per period (`period`: 2013-02 or 1981), see `PERIODS`.
    periods: pd.DataFrame
    retrains: list[Retrain]
    static_version: str | None
    by: str = "month"
    #: The plotted metric over time: `when`, `live`, `static` (see `trend`).
    trend: pd.DataFrame | None = None

    def table(self) -> str:
        metric = self.spec.gate.primary_metric
        entities = domain_for(self.spec).entity.plural
        rows = []
        for period in self.periods.itertuples():
            rows.append(
                {
                    self.by: period.period,
                    f"{entities} scored": f"{period.rows:,}",
                    f"live {metric}": _fmt(period.live),
                    f"static {metric}": _fmt(period.static),
                    "live - static": _fmt(period.live - period.static, signed=True),
                    "champion versions": period.versions,
                    "mean drift share": _fmt(period.drift_share, 2),
                    "retrains (promoted)": f"{period.retrains} ({period.promoted})",
                }
            )
        return markdown_table(rows)

    def retrain_table(self) -> str:
        rows = [
            {
                "monitored day": r.monitored_day,
                "trigger": r.trigger,
                "reason": r.reason,
                "version": r.version,
                "gate": "passed"
                if r.gate_passed
                else ("FAILED " + r.failed_checks if r.gate_passed is False else "not reached"),
                "promoted": "yes" if r.promoted else "no",
            }
            for r in self.retrains
        ]
        return markdown_table(rows)

    def periods_beaten(self, first: str) -> tuple[int, int]:
        """(periods from `first` on where live beats static, periods counted)."""
        later = self.periods[self.periods["period"] >= first].dropna(subset=["live", "static"])
        if self.spec.higher_is_better:
            return int((later["live"] > later["static"]).sum()), len(later)
        return int((later["live"] < later["static"]).sum()), len(later)

    def save(self, folder: Path, name: str) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": folder / f"{name}.md",
            "daily_csv": folder / f"{name}-daily.csv",
            "csv": folder / f"{name}-by-{self.by}.csv",
            "plot": folder / f"{name}.png",
        }
        paths["markdown"].write_text(
            f"# {self.spec.name}: the loop, replayed\n\n"
            f"Static model: v{self.static_version} (the first champion, never replaced).\n\n"
            f"## {self.by.capitalize()} by {self.by}\n\n{self.table()}\n\n"
            f"## Retrains\n\n{self.retrain_table()}\n"
        )
        self.daily.to_csv(paths["daily_csv"], index=False)
        self.periods.to_csv(paths["csv"], index=False)
        plot(self, paths["plot"])
        (folder / f"{name}-retrains.json").write_text(
            json.dumps([asdict(r) for r in self.retrains], indent=1)
        )
        return paths


def _fmt(value, digits: int = 4, signed: bool = False) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def build_report(
    instance: dg.DagsterInstance,
    warehouse: Warehouse,
    registry: ModelRegistry,
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    by: str = "month",
) -> Report:
    if by not in PERIODS:
        raise ValueError(f"a report groups by {' or '.join(PERIODS)}, not {by!r}")
    rows = scored_rows(warehouse, registry, spec, start, end)
    drift = drift_by_day(instance, spec)
    found = [
        r
        for r in retrains(instance, warehouse, registry, spec)
        if str(start) <= r.monitored_day <= str(end)
    ]
    daily_rows = []
    for day, group in rows.groupby("day"):
        daily_rows.append(
            {
                "day": day,
                "rows": len(group),
                "labelled": int(group[LABEL].notna().sum()),
                "champion_version": ",".join(sorted(set(group["model_version"].astype(str)))),
                "live": _metric(spec, group, "score"),
                "static": _metric(spec, group, "static_score"),
            }
        )
    daily = pd.DataFrame(
        daily_rows, columns=["day", "rows", "labelled", "champion_version", "live", "static"]
    )
    daily = daily.merge(drift, on="day", how="left")
    fmt = PERIODS[by]
    rows["period"] = pd.to_datetime(rows[EVENT_DATE]).dt.strftime(fmt)
    day_period = pd.to_datetime(daily["day"]).dt.strftime(fmt)
    period_rows = []
    for period, group in rows.groupby("period"):
        in_period = [r for r in found if pd.Timestamp(r.monitored_day).strftime(fmt) == period]
        days = daily[day_period == period]
        period_rows.append(
            {
                "period": period,
                "rows": len(group),
                "live": _metric(spec, group, "score"),
                "static": _metric(spec, group, "static_score"),
                "versions": ", ".join(
                    f"v{v}" for v in sorted(set(group["model_version"].astype(str)), key=int)
                ),
                "drift_share": float(days["drift_share"].mean()) if len(days) else float("nan"),
                "retrains": len(in_period),
                "promoted": sum(r.promoted for r in in_period),
            }
        )
    periods = pd.DataFrame(
        period_rows,
        columns=[
            "period",
            "rows",
            "live",
            "static",
            "versions",
            "drift_share",
            "retrains",
            "promoted",
        ],
    )
    return Report(
        spec, daily, periods, found, static_version(warehouse, spec), by, trend(spec, rows, by)
    )


def trend(spec: ModelSpec, rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """The metric to plot over time. Grouped by month (flights: thousands of rows a day), each
    day's metric, as a 7-day mean; grouped by year (one row a day), each month's end over the
    trailing 91 days, so every point is measured on enough rows."""
    columns = ["when", "live", "static"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    if by == "month":
        points = [
            {"when": pd.Timestamp(day), **{c: _metric(spec, g, s) for c, s in SCORED}}
            for day, g in rows.groupby("day")
        ]
        frame = pd.DataFrame(points, columns=columns).set_index("when")
        return frame.rolling("7D").mean().reset_index()
    when = pd.to_datetime(rows[EVENT_DATE])
    points = []
    for end in pd.date_range(when.min(), when.max() + pd.offsets.MonthEnd(0), freq="ME"):
        window = rows[(when > end - pd.Timedelta(days=91)) & (when <= end)]
        points.append({"when": end, **{c: _metric(spec, window, s) for c, s in SCORED}})
    return pd.DataFrame(points, columns=columns)


#: Retrain markers: promoted (True) or champion kept (False).
RETRAIN_COLOURS = {True: "tab:green", False: "tab:red"}

#: (trend column, score column) of the live champion and the static model.
SCORED = (("live", SCORE), ("static", "static_score"))


def plot(report: Report, path: Path) -> None:
    """Two panels sharing a date axis: the live champion against the static model (retrains
    marked where they were triggered: green promoted, red kept the champion, both in the
    legend with their counts), and the daily drift share against its threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    metric = report.spec.gate.primary_metric
    daily = report.daily.assign(day=pd.to_datetime(report.daily["day"]))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    line = report.trend if report.trend is not None else pd.DataFrame(columns=["when"])
    top.plot(line["when"], line["live"], color="tab:blue", linewidth=2, label="live champion")
    top.plot(
        line["when"],
        line["static"],
        color="tab:orange",
        linewidth=2,
        label=f"static model (v{report.static_version}, never replaced)",
    )
    marked = {True: 0, False: 0}
    for r in report.retrains:
        if not r.monitored_day:
            continue
        when = pd.Timestamp(r.monitored_day)
        colour = RETRAIN_COLOURS[r.promoted]
        marked[r.promoted] += 1
        for ax in (top, bottom):
            ax.axvline(when, color=colour, alpha=0.7, linewidth=1.5, linestyle=":")
        top.plot(
            [when], [1.0], marker="v", markersize=9, color=colour,
            transform=top.get_xaxis_transform(), clip_on=False,
        )  # fmt: skip
    handles, _ = top.get_legend_handles_labels()
    for promoted, label in ((True, "retrain, promoted"), (False, "retrain, champion kept")):
        if marked[promoted]:
            handles.append(
                Line2D(
                    [], [], color=RETRAIN_COLOURS[promoted], marker="v", linestyle=":",
                    label=f"{label} ({marked[promoted]})",
                )
            )  # fmt: skip
    top.set_ylabel(
        f"daily {metric}, 7-day mean" if report.by == "month" else f"{metric}, trailing 91 days"
    )
    top.set_title(
        f"{report.spec.name}: the live champion, retrained by the loop, vs a static one", pad=12
    )
    top.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9)
    top.grid(alpha=0.3)
    drift = daily.dropna(subset=["drift_share"])  # one point a cycle (a day or a month)
    bottom.plot(
        drift["day"], drift["drift_share"], color="tab:purple", marker=".", label="drift share"
    )
    bottom.axhline(
        report.spec.drift.share_threshold, color="grey", linestyle="--", label="alarm threshold"
    )
    bottom.set_ylabel("share of features drifted")
    bottom.legend(loc="upper left", fontsize=9, framealpha=0.9)
    bottom.grid(alpha=0.3)
    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
