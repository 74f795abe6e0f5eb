"""What a replay did, month by month, read back from where the platform keeps it.

Scores come from `scores.<spec>` (each row carries the version that was live when it was
scored), labels from `features.<spec>`, drift from the `drift_report/<spec>` materializations
(`instance.fetch_materializations`), retrains from the `train_<spec>` run records and their
tags, each one's gate verdict from its version's tags in MLflow, and its promotion from the
audit log. The static
model is the first champion ever promoted (the bootstrap model), scored on the same flights.
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


def scored_flights(
    warehouse: Warehouse, registry: ModelRegistry, spec: ModelSpec, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Every scored flight from `start` to `end` with its label, the live score, and the score
    the static model gives it."""
    window = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{end}'"
    scores = warehouse.read_table("scores", spec.name, where=window)
    features = warehouse.read_table("features", spec.name, where=window)
    key = list(domain_for(spec).entity_key)
    flights = scores[[*key, SCORE, MODEL_VERSION]].merge(features, on=key, how="inner")
    static = static_version(warehouse, spec)
    if static is not None and len(flights):
        model = registry.load_verified(spec.name, static)
        flights["static_score"] = predict(model, flights, spec)
    else:
        flights["static_score"] = np.nan
    flights["day"] = pd.to_datetime(flights[EVENT_DATE]).dt.date
    return flights


def drift_by_day(instance: dg.DagsterInstance, spec: ModelSpec) -> pd.DataFrame:
    records = instance.fetch_materializations(
        dg.AssetKey(["drift_report", spec.name]), limit=10_000
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


@dataclass
class Report:
    spec: ModelSpec
    daily: pd.DataFrame
    monthly: pd.DataFrame
    retrains: list[Retrain]
    static_version: str | None

    def table(self) -> str:
        metric = self.spec.gate.primary_metric
        rows = []
        for month in self.monthly.itertuples():
            rows.append(
                {
                    "month": month.month,
                    "flights scored": f"{month.flights:,}",
                    f"live {metric}": _fmt(month.live),
                    f"static {metric}": _fmt(month.static),
                    "live - static": _fmt(month.live - month.static, signed=True),
                    "champion versions": month.versions,
                    "mean drift share": _fmt(month.drift_share, 2),
                    "retrains (promoted)": f"{month.retrains} ({month.promoted})",
                }
            )
        return markdown_table(rows)

    def retrain_table(self) -> str:
        rows = [
            {
                "monitored day": r.monitored_day,
                "trigger": r.trigger,
                "reason": r.reason[:90],
                "version": r.version,
                "gate": "passed"
                if r.gate_passed
                else ("FAILED " + r.failed_checks if r.gate_passed is False else "not reached"),
                "promoted": "yes" if r.promoted else "no",
            }
            for r in self.retrains
        ]
        return markdown_table(rows)

    def months_beaten(self, first_month: str) -> tuple[int, int]:
        """(months from `first_month` on where live beats static, months counted)."""
        later = self.monthly[self.monthly["month"] >= first_month].dropna(subset=["live", "static"])
        if self.spec.higher_is_better:
            return int((later["live"] > later["static"]).sum()), len(later)
        return int((later["live"] < later["static"]).sum()), len(later)

    def save(self, folder: Path, name: str) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": folder / f"{name}.md",
            "daily_csv": folder / f"{name}-daily.csv",
            "plot": folder / f"{name}.png",
        }
        paths["markdown"].write_text(
            f"# {self.spec.name}: the loop, replayed\n\n"
            f"Static model: v{self.static_version} (the first champion, never replaced).\n\n"
            f"## Month by month\n\n{self.table()}\n\n## Retrains\n\n{self.retrain_table()}\n"
        )
        self.daily.to_csv(paths["daily_csv"], index=False)
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
) -> Report:
    flights = scored_flights(warehouse, registry, spec, start, end)
    drift = drift_by_day(instance, spec)
    found = [
        r
        for r in retrains(instance, warehouse, registry, spec)
        if str(start) <= r.monitored_day <= str(end)
    ]
    daily_rows = []
    for day, group in flights.groupby("day"):
        daily_rows.append(
            {
                "day": day,
                "flights": len(group),
                "labelled": int(group[LABEL].notna().sum()),
                "champion_version": ",".join(sorted(set(group["model_version"].astype(str)))),
                "live": _metric(spec, group, "score"),
                "static": _metric(spec, group, "static_score"),
            }
        )
    daily = pd.DataFrame(
        daily_rows, columns=["day", "flights", "labelled", "champion_version", "live", "static"]
    )
    daily = daily.merge(drift, on="day", how="left")
    flights["month"] = pd.to_datetime(flights[EVENT_DATE]).dt.strftime("%Y-%m")
    monthly_rows = []
    for month, group in flights.groupby("month"):
        in_month = [r for r in found if r.monitored_day[:7] == month]
        days = daily[pd.to_datetime(daily["day"]).dt.strftime("%Y-%m") == month]
        monthly_rows.append(
            {
                "month": month,
                "flights": len(group),
                "live": _metric(spec, group, "score"),
                "static": _metric(spec, group, "static_score"),
                "versions": ", ".join(
                    f"v{v}" for v in sorted(set(group["model_version"].astype(str)), key=int)
                ),
                "drift_share": float(days["drift_share"].mean()) if len(days) else float("nan"),
                "retrains": len(in_month),
                "promoted": sum(r.promoted for r in in_month),
            }
        )
    monthly = pd.DataFrame(
        monthly_rows,
        columns=[
            "month",
            "flights",
            "live",
            "static",
            "versions",
            "drift_share",
            "retrains",
            "promoted",
        ],
    )
    return Report(spec, daily, monthly, found, static_version(warehouse, spec))


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report.spec.gate.primary_metric
    daily = report.daily.assign(day=pd.to_datetime(report.daily["day"]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    weekly = daily.set_index("day")[["live", "static"]].rolling("7D").mean()
    top.plot(weekly.index, weekly["live"], label="live champion (retrained by the loop)")
    top.plot(weekly.index, weekly["static"], label=f"static model v{report.static_version}")
    for r in report.retrains:
        if not r.monitored_day:
            continue
        when = pd.Timestamp(r.monitored_day)
        colour = "tab:green" if r.promoted else "tab:red"
        top.axvline(when, color=colour, alpha=0.35, linewidth=1)
    top.set_ylabel(f"daily {metric}, 7-day mean")
    top.set_title(
        f"{report.spec.name}: live champion vs static model "
        "(green: retrain promoted, red: retrain kept the champion)"
    )
    top.legend(loc="lower left")
    top.grid(alpha=0.3)
    bottom.plot(daily["day"], daily["drift_share"], color="tab:purple", label="drift share")
    bottom.axhline(
        report.spec.drift.share_threshold, color="grey", linestyle="--", label="threshold"
    )
    bottom.set_ylabel("share of features drifted")
    bottom.legend(loc="upper left")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
