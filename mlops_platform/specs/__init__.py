"""Model specs: what a model predicts, from which features, and the bars it must clear.

A spec is a YAML file in its domain's folder (`domains/<domain>/<spec>.yaml`), naming the domain
(`domain: <name>`), validated by `ModelSpec` against that domain's declaration (leakage
columns, column classification, the label table) and feature functions. Platform code reads
specs and the feature functions they name; nothing model-specific is hard-wired elsewhere.
Which specs the code location builds pipelines for is `MLOPS_MODEL_SPECS` (comma-separated;
unset: the `default_specs` of `MLOPS_DOMAINS`, see `mlops_platform.domains`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops_platform.contracts.classification import classification_of, classified_columns
from mlops_platform.domains import (
    DECLARATION,
    Domain,
    enabled_spec_names,
    features_module,
    load_domain,
    spec_files,
)
from mlops_platform.domains.validation import load_yaml, readable
from mlops_platform.privacy import classified_uses


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    column: str = Field(description="raw column the label comes from")
    threshold: float | None = Field(
        default=None, description="classification: label = column > threshold"
    )


class Features(_Strict):
    functions: list[str] = Field(description="feature functions (the domain's features.py)")
    numeric: list[str]
    categorical: list[str] = Field(default_factory=list)
    calendar: list[str] = Field(
        default_factory=list,
        description="features that describe the calendar or the time of schedule (day of "
        "week, scheduled hour): they change by definition from window to window, so drift "
        "monitoring leaves them out unless `drift.monitor_calendar` is on",
    )

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @model_validator(mode="after")
    def _calendar_known(self) -> Features:
        unknown = sorted(set(self.calendar) - set(self.columns))
        if unknown:
            raise ValueError(f"features.calendar lists {unknown}, which are not features")
        return self


class Floor(_Strict):
    min: float | None = None
    max: float | None = None


class Gate(_Strict):
    primary_metric: str = Field(description="compared with the champion")
    floors: dict[str, Floor] = Field(description="absolute bars per metric")
    champion_tolerance: float = Field(ge=0, description="allowed loss on the primary metric")
    replace_champion_below_floor: bool = Field(
        default=True,
        description="a floor the champion misses too, on the same held-out rows, does not stop "
        "a challenger that is better on it (after a concept change every model is below the "
        "old bar; keeping the worse one in service protects nothing)",
    )
    slice_columns: list[str] = Field(default_factory=list)
    top_slices: int = Field(default=5, ge=1, description="largest values of each slice column")
    min_slice_rows: int = Field(default=200, ge=1)
    slice_tolerance: float = Field(default=0.03, ge=0)
    latency_single_row_ms: float = Field(gt=0, description="ceiling, threads pinned to one")
    latency_1000_rows_ms: float = Field(gt=0, description="ceiling, threads pinned to one")
    latency_max_ratio_to_champion: float = Field(
        default=1.5, gt=1, description="at most this times the champion, measured alongside"
    )
    latency_rounds: int = Field(
        default=5, ge=1, description="measurement rounds before a latency check may fail"
    )


class Drift(_Strict):
    # Distance methods only: a value above the threshold means drift (p-value tests invert it).
    method: Literal["psi", "wasserstein", "jensenshannon", "kl_div", "hellinger"] = Field(
        default="psi", description="Evidently drift method for every feature"
    )
    feature_threshold: float = Field(default=0.2, description="a feature drifts above this")
    share_threshold: float = Field(default=0.3, description="retrain when this share drifts")
    prediction_threshold: float = Field(default=0.2, description="score distribution drift")
    performance_drop: float = Field(default=0.03, description="retrain on this metric loss")
    window_days: int = Field(default=7, ge=1, description="recent days compared")
    cooldown_days: int = Field(default=14, ge=0, description="no second retrain within")
    max_model_age_days: int | None = Field(
        default=None,
        ge=1,
        description="retrain once the champion's training data ends this many days before "
        "the monitored day, whatever drift and performance say (None: no age limit); with "
        "age_loss_budget, the longest such limit",
    )
    age_loss_budget: float | None = Field(
        default=None,
        gt=0,
        description="adapt the age limit to how fast the world moves: the loss of the primary "
        "metric a champion may be expected to have built up with age before it is retrained. "
        "The pace is the champion's own gate evidence (its gain over the model it replaced, "
        "per day between their training data ends); the limit is the newborn age plus this "
        "budget over that pace, between min_model_age_days and max_model_age_days (None: the "
        "fixed max_model_age_days)",
    )
    min_model_age_days: int | None = Field(
        default=None,
        ge=1,
        description="with age_loss_budget, the shortest age limit however fast the world moves",
    )
    pace_comparisons: int = Field(
        default=1,
        ge=1,
        description="with age_loss_budget, how many of the newest gate comparisons of the "
        "champion's line the pace pools (total gain over total days): its own promotion, its "
        "predecessors', and challengers rejected against any of them (a rejection is evidence "
        "too: a fresher model that gained little says the world moved little). 1: the newest "
        "comparison only",
    )
    retrain_on: list[Literal["features", "score", "label"]] = Field(
        default_factory=lambda: ["features", "score", "label"],
        description="which of the drift report's alarms start a retrain: feature drift, score "
        "(prediction) drift, label shift. Every alarm is reported either way; a spec whose labels "
        "arrive within the performance window may leave score and label to the performance "
        "trigger, which judges the model's quality itself",
    )
    exclude: list[str] = Field(
        default_factory=list, description="features not monitored (e.g. day of year)"
    )
    monitor_calendar: bool = Field(
        default=False, description="also monitor the features listed in features.calendar"
    )
    # Calibration (monitoring/calibration.py): each column's threshold is the larger of the
    # fixed one above (a minimum effect size) and the quantile of the same statistic between
    # windows of `window_days` days of the reference and the rest of it.
    false_alarm_rate: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="target share of reference windows of the same length that would alarm",
    )
    reference_days: int | None = Field(
        default=None,
        ge=1,
        description="the reference is the last N days of the champion's training window "
        "(None: all of it)",
    )
    calibration_windows: int = Field(
        default=60, ge=5, description="at most this many reference windows for calibration"
    )
    # Performance trigger on late labels (monitoring/significance.py).
    min_labelled_rows: int = Field(
        default=200, ge=10, description="no performance verdict on fewer labelled rows"
    )
    performance_window_days: int | None = Field(
        default=None,
        ge=1,
        description="the performance trigger judges the labels of the last N days (None: "
        "window_days, the drift window)",
    )
    performance_min_labelled_rows: int | None = Field(
        default=None,
        ge=10,
        description="no performance verdict on fewer labelled rows of that window (None: "
        "min_labelled_rows, which the deploy guard keeps)",
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="bootstrap confidence of a significant drop"
    )
    bootstrap_samples: int = Field(default=500, ge=100, description="bootstrap resamples")
    guard_days: int = Field(
        default=14,
        ge=0,
        description="after a promotion, compare the new champion with the previous one on "
        "late labels for this many days (0: no deploy guard)",
    )

    @model_validator(mode="after")
    def _performance_window_within_the_window(self) -> Drift:
        # Monitoring reads the scored rows of the last `window_days`; a longer performance
        # window would silently judge fewer days than it says.
        if (self.performance_window_days or 0) > self.window_days:
            raise ValueError(
                f"performance_window_days ({self.performance_window_days}) is longer than "
                f"window_days ({self.window_days})"
            )
        return self

    @model_validator(mode="after")
    def _adaptive_age_bounded(self) -> Drift:
        # The adaptive limit moves between two bounds: without the upper one a champion whose
        # gain was nil would never age out, and bounds the wrong way round choose nothing.
        if self.age_loss_budget is not None and self.max_model_age_days is None:
            raise ValueError(
                "age_loss_budget needs max_model_age_days: the longest age limit when the "
                "champion's gain was small or none"
            )
        if self.pace_comparisons != 1 and self.age_loss_budget is None:
            raise ValueError(
                "pace_comparisons pools the pace of the adaptive age limit: set age_loss_budget too"
            )
        if self.min_model_age_days is not None:
            if self.age_loss_budget is None:
                raise ValueError(
                    "min_model_age_days bounds the adaptive age limit: set age_loss_budget too "
                    "(or leave min_model_age_days out for the fixed max_model_age_days)"
                )
            if self.min_model_age_days > self.max_model_age_days:
                raise ValueError(
                    f"min_model_age_days ({self.min_model_age_days}) is larger than "
                    f"max_model_age_days ({self.max_model_age_days})"
                )
        return self

    @property
    def performance_days(self) -> int:
        """Days of labels the performance trigger judges."""
        return self.performance_window_days or self.window_days

    @property
    def performance_min_rows(self) -> int:
        """Labelled rows the performance trigger needs for a verdict."""
        return self.performance_min_labelled_rows or self.min_labelled_rows


class Approval(_Strict):
    required: bool = False


class Allowance(_Strict):
    column: str = Field(description="a classified raw column the spec's features may read")
    reason: str = Field(
        min_length=20, description="why the model needs it, and how it is kept out of outputs"
    )


class Privacy(_Strict):
    """Classified columns (contracts/classification.py) stay out of features unless allowed
    here, one by one, with a reason."""

    allow: list[Allowance] = Field(default_factory=list)


def privacy_problems(features: Features, privacy: Privacy, domain: Domain) -> list[str]:
    """What the features read or produce that the domain classifies and the spec does not
    allow, and allowances that allow nothing (stale ones hide future changes)."""
    allowed = {a.column for a in privacy.allow}
    module = features_module(domain)
    where = f"domain {domain.name}'s {Path(module.__file__).name} ({module.__file__})"
    absent = [
        name
        for name in ("FEATURE_FUNCTIONS", "FEATURE_INPUTS", "base_frame")
        if not hasattr(module, name)
    ]
    if absent:
        return [f"features.functions: {where} does not define {', '.join(absent)}"]
    inputs, functions = module.FEATURE_INPUTS, module.FEATURE_FUNCTIONS
    unknown = [f for f in features.functions if f not in functions]
    if unknown:
        return [
            f"features.functions: {unknown} are not in FEATURE_FUNCTIONS of {where} "
            f"(it has {sorted(functions)})"
        ]
    undeclared = [f for f in features.functions if f not in inputs]
    if undeclared:
        return [
            f"features.functions: {undeclared} do not declare the raw columns they read "
            f"(FEATURE_INPUTS of {where}, which declares {sorted(inputs)})"
        ]
    problems, used = [], set()
    for use in classified_uses(inputs, features.functions, classification_of(domain)):
        used.add(use.column)
        if use.column not in allowed:
            problems.append(
                f"feature function {use.function!r} reads {use.table}.{use.column}, classified "
                f"{use.data_class.value}: list it under privacy.allow with a reason, or drop it"
            )
    classes = classified_columns(domain=domain)
    for column in features.columns:
        if column in classes:
            used.add(column)
            if column not in allowed:
                problems.append(
                    f"feature {column!r} is classified {classes[column].value}: list it under "
                    "privacy.allow with a reason, or drop it"
                )
    for column in sorted(allowed - used):
        problems.append(f"privacy.allow lists {column!r}, which no feature reads or classifies")
    return problems


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    domain: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the domain it belongs to")
    description: str
    task: Literal["classification", "regression"]
    target: Target
    prediction_point: str = Field(description="when predictions are made")
    features: Features
    training_window_days: int = Field(gt=0)
    holdout_days: int = Field(gt=0)
    min_train_rows: int = Field(
        default=1000,
        ge=10,
        description="fewer labelled rows in the training window and no model is trained",
    )
    min_holdout_rows: int = Field(
        default=200,
        ge=10,
        description="fewer labelled rows in the held-out days and no model is trained (the "
        "gate would judge it on noise)",
    )
    gate: Gate
    drift: Drift = Drift()
    approval: Approval = Approval()
    privacy: Privacy = Privacy()

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        try:
            domain = load_domain(self.domain)
        except KeyError as exc:
            raise ValueError(f"domain: {exc.args[0]}") from None
        leaked = set(self.features.columns) & set(domain.leakage_columns)
        if leaked:
            raise ValueError(
                f"features: {sorted(leaked)} are only known after the prediction point "
                f"({self.prediction_point}) (leakage)"
            )
        label_table = domain.tables[domain.label.table]
        if self.target.column not in label_table.columns:
            raise ValueError(
                f"target.column {self.target.column!r} is not a column of the label table "
                f"{domain.label.table} of domain {domain.name}"
            )
        problems = privacy_problems(self.features, self.privacy, domain)
        if problems:
            raise ValueError("; ".join(problems))
        if self.task == "classification" and self.target.threshold is None:
            raise ValueError("target.threshold: a classification spec needs one")
        known = {"roc_auc", "brier", "log_loss", "mae", "rmse", "r2"}
        for metric in [self.gate.primary_metric, *self.gate.floors]:
            if metric not in known:
                raise ValueError(f"gate: unknown metric {metric!r} (one of {sorted(known)})")
        problems = window_problems(self, domain.label.lag_days)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def newborn_age_days(self) -> int:
        """The age of a model on the day whose monitoring started its training: its data end
        before the held-out days, the partly labelled newest day and the label lag
        (`model.split.plan_split`)."""
        return self.holdout_days + 1 + load_domain(self.domain).label.lag_days

    @property
    def higher_is_better(self) -> bool:
        return self.gate.primary_metric in {"roc_auc", "r2"}


#: A cluster bootstrap (the performance trigger, the deploy guard, the gate's comparison) of
#: fewer days than this has no spread worth a verdict; windows are refused below it.
MIN_GROUPS = 5


def window_problems(spec: ModelSpec, lag_days: int) -> list[str]:
    """Windows too short for the rules that judge them: the performance trigger and the
    gate's comparison resample whole days and give no verdict on fewer than `MIN_GROUPS`
    (`monitoring.significance`); a maximum model age a new model already has when trained
    would retrain every champion at every cooldown's end."""
    problems = []
    drift = spec.drift
    field = "performance_window_days" if drift.performance_window_days else "window_days"
    labelled = drift.performance_days - lag_days
    if labelled < MIN_GROUPS:
        problems.append(
            f"drift.{field}: {drift.performance_days} days with labels {lag_days} day(s) late "
            f"(the domain's label.lag_days) leave {labelled} labelled days, and the "
            f"performance trigger resamples whole days: it needs at least {MIN_GROUPS}"
        )
    if spec.holdout_days < MIN_GROUPS:
        problems.append(
            f"holdout_days: {spec.holdout_days} days, but the performance trigger resamples the "
            f"held-out days as whole days: it needs at least {MIN_GROUPS}"
        )
    born = spec.holdout_days + 1 + lag_days
    if drift.max_model_age_days is not None and drift.max_model_age_days <= born:
        problems.append(
            f"drift.max_model_age_days: {drift.max_model_age_days} days, but a new model is "
            f"already {born} days old when it is trained (holdout_days {spec.holdout_days} + the "
            f"partly labelled newest day + label.lag_days {lag_days}): every champion would be "
            "born too old (make it larger than that)"
        )
    if drift.min_model_age_days is not None and drift.min_model_age_days <= born:
        problems.append(
            f"drift.min_model_age_days: {drift.min_model_age_days} days, but a new model is "
            f"already {born} days old when it is trained (holdout_days {spec.holdout_days} + the "
            f"partly labelled newest day + label.lag_days {lag_days}): after a large gain every "
            "champion would be born too old (make it larger than that)"
        )
    return problems


def spec_path(name: str) -> Path:
    """The file of a spec by name, in whichever domain folder holds it."""
    files = spec_files()
    if name not in files:
        raise FileNotFoundError(f"no model spec {name!r}; available: {', '.join(sorted(files))}")
    return files[name]


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """A spec by name (a file in a domain folder) or by path; errors name the file and the
    field. A spec read by path beside a `domain.yaml` belongs to that domain."""
    path = Path(name_or_path)
    if not path.suffix:
        path = spec_path(str(name_or_path))
    if not path.exists():
        available = sorted(spec_files())
        raise FileNotFoundError(f"no model spec {path}; available: {', '.join(available)}")
    try:
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping of fields, got {type(raw).__name__}")
        declaration = path.parent / DECLARATION
        if declaration.exists():
            domain = load_domain(declaration)
            if isinstance(raw, dict) and raw.get("domain") not in (None, domain.name):
                raise ValueError(
                    f"domain: {raw.get('domain')!r}, but the spec is in domain "
                    f"{domain.name!r}'s folder"
                )
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid model spec {path}:{readable(exc, [ModelSpec])}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"invalid model spec {path}: {exc}") from None


@cache
def enabled_specs() -> tuple[ModelSpec, ...]:
    """The specs the code location builds (see the module docstring)."""
    return tuple(load_spec(name) for name in enabled_spec_names())
