"""Drift of recent production inputs, predictions and labels against the champion's reference,
with Evidently (the spec's method; per-column thresholds calibrated on the reference's own
windows, `calibration.py`). No Dagster."""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_platform.model.columns import LABEL, SCORE
from mlops_platform.monitoring.calibration import Calibration, alarm, calibrate
from mlops_platform.specs import ModelSpec


@dataclass
class DriftResult:
    share: float
    drifted: list[str]
    per_feature: dict[str, float]
    prediction_drift: float
    reference_rows: int
    current_rows: int
    snapshot: object
    #: Monitored columns with no value at all on one side (wind gusts on a calm week): they
    #: cannot be compared, so they are left out of this report and named instead.
    empty: list[str] = field(default_factory=list)
    #: The threshold each column was held to (calibrated, or the spec's fixed ones).
    thresholds: dict[str, float] = field(default_factory=dict)
    #: Distribution change of the labels that have arrived (NaN: none in the window yet).
    label_shift: float = math.nan
    calibration: Calibration | None = None

    def alarms(self, spec: ModelSpec) -> list[str]:
        """What alarms: "features" (share over the spec's), "score", "label"."""
        values = {**self.per_feature, SCORE: self.prediction_drift, LABEL: self.label_shift}
        thresholds = {**fixed_thresholds(spec), **self.thresholds}
        return alarm(
            values, thresholds, list(self.per_feature), [SCORE, LABEL], spec.drift.share_threshold
        )[2]

    def detected(self, spec: ModelSpec) -> bool:
        return bool(self.alarms(spec))

    @property
    def false_alarm_rate(self) -> float:
        return self.calibration.false_alarm_rate if self.calibration else math.nan


def monitored_columns(spec: ModelSpec) -> tuple[list[str], list[str]]:
    """(numeric, categorical) features monitored: all but `drift.exclude` and, unless
    `drift.monitor_calendar`, the spec's calendar features."""
    skip = set(spec.drift.exclude)
    if not spec.drift.monitor_calendar:
        skip |= set(spec.features.calendar)
    numeric = [c for c in spec.features.numeric if c not in skip]
    categorical = [c for c in spec.features.categorical if c not in skip]
    return numeric, categorical


def fixed_thresholds(spec: ModelSpec) -> dict[str, float]:
    """The spec's own thresholds: the floor every calibrated threshold keeps."""
    numeric, categorical = monitored_columns(spec)
    thresholds = dict.fromkeys([*numeric, *categorical], spec.drift.feature_threshold)
    thresholds[SCORE] = spec.drift.prediction_threshold
    thresholds[LABEL] = spec.drift.prediction_threshold
    return thresholds


def column_kinds(spec: ModelSpec) -> dict[str, bool]:
    """{column: categorical?} of everything drift compares: features, score, label."""
    numeric, categorical = monitored_columns(spec)
    kinds = {**dict.fromkeys(numeric, False), **dict.fromkeys(categorical, True)}
    kinds[SCORE] = False
    kinds[LABEL] = spec.task == "classification"
    return kinds


def calibrate_spec(
    reference: pd.DataFrame, spec: ModelSpec, dates: pd.Series | None
) -> Calibration:
    """Thresholds for the spec's monitored columns from the reference's own windows of
    `drift.window_days` days (see `calibration.calibrate`)."""
    kinds = {c: k for c, k in column_kinds(spec).items() if c in reference.columns}
    features = [c for c in kinds if c not in (SCORE, LABEL)]
    return calibrate(
        reference,
        kinds,
        method=spec.drift.method,
        window_days=spec.drift.window_days,
        share_columns=features,
        own_columns=[c for c in (SCORE, LABEL) if c in kinds],
        share_threshold=spec.drift.share_threshold,
        target_rate=spec.drift.false_alarm_rate,
        floors=fixed_thresholds(spec),
        dates=dates,
        max_windows=spec.drift.calibration_windows,
    )


@functools.cache
def parse_plotly_paths_once() -> None:
    """Plotly 5 (Evidently pins plotly<6) parses a property path string (`xaxis2.title.text`,
    `error_x`) on every look-up: `make_subplots` alone checks each of the layout's ~100
    property names that way for every figure, and the drift table builds two figures per
    column. Its parser (`plotly.basedatatypes._str_to_dict_path_full`) is a pure function of
    the string, so its results are kept (per process, a few hundred distinct paths): ~5% of a
    replay day's CPU profile, every figure unchanged (`test_monitoring` compares the pages)."""
    from plotly import basedatatypes

    parse = getattr(basedatatypes, "_str_to_dict_path_full", None)  # see above
    if parse is None:  # another plotly than Evidently's pin: nothing to speed up
        return

    @functools.lru_cache(maxsize=4096)
    def parsed(path: str) -> tuple[tuple, tuple[int, ...]]:
        keys, starts = parse(path)
        return keys, tuple(starts)  # callers only read the positions (error messages)

    def cached(path):  # noqa: ANN001, ANN202 - plotly's own signature
        return parsed(path) if isinstance(path, str) else parse(path)

    basedatatypes._str_to_dict_path_full = cached  # noqa: SLF001


class SubplotGrids:
    """`plotly.subplots.make_subplots` for Evidently's plots, each distinct grid built once.

    The drift table plots each column twice, each plot on a new `make_subplots` grid (one or
    two panels, the same titles every time): ~8 ms of validating the default template and
    the axes, for a figure that is the same every time (~9% of a replay day's CPU). Here the
    first grid of each kind is built by plotly, and every later one is a new figure made from
    a copy of that one's JSON without validating it again (it was validated when built),
    with the same grid of subplots; what is added to it afterwards (traces, titles, menus) is
    validated as before, so each figure's JSON is the one plotly builds
    (`test_monitoring` compares them).

    Most of a grid's JSON is plotly's default template (~1,000 values), which `go.Figure`
    deep-copies once more after reading it (`BaseFigure.__init__`: ~0.8 ms a figure, two
    figures a column, ~6% of the drift step). The copy is made from the JSON with the template
    left as an empty placeholder (kept in its place: plotly then applies no default template),
    and the template, parsed afresh from its JSON, is put in the placeholder's place: the same
    figure, each figure its own template, without that second copy."""

    def __init__(self, build):
        self.build = build  # plotly's make_subplots
        self.grids: dict[tuple, tuple[str, str | None, object, object]] = {}

    @staticmethod
    def key(kwargs: dict) -> tuple | None:
        """The call's arguments as a key, or None if one is not a plain value (a figure, a
        spec dict): such calls are built by plotly each time."""
        items = []
        for name, value in sorted(kwargs.items()):
            if isinstance(value, list | tuple):
                if not all(isinstance(v, str | int | float | bool | None) for v in value):
                    return None
                value = (type(value).__name__, tuple(value))
            elif not isinstance(value, str | int | float | bool | None):
                return None
            items.append((name, value))
        return tuple(items)

    def __call__(self, *args, **kwargs):
        key = self.key(kwargs) if not args else None
        if key is None:
            return self.build(*args, **kwargs)
        if key not in self.grids:
            import json

            figure = self.build(**kwargs)
            data = json.loads(figure.to_json())
            template = data["layout"].get("template")
            if template is not None:  # a placeholder in its place (see above)
                data["layout"]["template"] = {}
                template = json.dumps(template)
            grid = (json.dumps(data), template, figure._grid_ref, figure._grid_str)  # noqa: SLF001
            self.grids[key] = grid
        return self.figure(*self.grids[key])

    @staticmethod
    def figure(data: str, template: str | None, grid_ref, grid_str):  # noqa: ANN001, ANN205
        import copy
        import json

        from plotly import graph_objects as go

        figure = go.Figure(json.loads(data), _validate=False)  # a fresh copy of the JSON
        if template is not None:  # the figure's own copy, in the placeholder's place
            figure._layout["template"] = json.loads(template)  # noqa: SLF001
        # What is added from here on is validated, as on plotly's own figure.
        figure._validate = figure.layout._validate = True  # noqa: SLF001
        # The grid's description, attached as make_subplots attaches it.
        figure.__dict__["_grid_ref"] = copy.deepcopy(grid_ref)
        figure.__dict__["_grid_str"] = grid_str
        return figure


@functools.cache
def build_subplot_grids_once() -> None:
    """Evidently's plots (`evidently.legacy.utils.visualizations`, which imported plotly's
    `make_subplots` by name) get their grids from `SubplotGrids`."""
    from evidently.legacy.utils import visualizations

    visualizations.make_subplots = SubplotGrids(visualizations.make_subplots)


@functools.cache
def drift_table_preset() -> type:
    """Evidently's `DataDriftPreset` computing each column's drift once.

    The preset's page is a dataset-drift summary and a drift table (one row per column: score,
    method, threshold, verdict, distributions), both computed by legacy metrics that each run
    every column's test (`DatasetDriftMetric` for the summary, `DataDriftTable` for the rows);
    the preset also adds a `DriftedColumnsCount` (the summary's metric again) and a
    `ValueDrift` per column, whose plots it leaves off the page. So every column was tested
    three times and plotted twice for one table (a replay's daily drift step: 2.1 s a
    day, 1.25 s without them). This preset renders the same page from the table alone: the
    summary's figures are the table's (same columns, tests and thresholds; Evidently's own
    rule for the dataset verdict), and `table_result` gives the columns' scores and the
    drifted share.
    (A class built on first use: Evidently is imported only by the runs that compare.)"""
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DataDriftTable, DatasetDriftMetric
    from evidently.legacy.metrics.data_drift.dataset_drift_metric import (
        DataDriftMetricsRenderer,
        DatasetDriftMetricResults,
    )
    from evidently.presets import DataDriftPreset

    parse_plotly_paths_once()
    build_subplot_grids_once()

    class DriftTablePreset(DataDriftPreset):
        def generate_metrics(self, context) -> list:  # noqa: ANN001, ARG002 - Evidently's
            return []  # the table is the preset's only computation (`render`)

        def render(self, context, child_widgets=None) -> list:  # noqa: ANN001, ARG002
            """`DataDriftPreset.render`'s page: the summary's widgets, then the table's."""
            table, widgets = context.get_legacy_metric(
                self.table(), _default_input_data_generator, None
            )
            summary = DatasetDriftMetric(columns=self.columns, drift_share=self.drift_share)
            share = table.share_of_drifted_columns
            figures = DatasetDriftMetricResults(
                drift_share=self.drift_share,
                number_of_columns=table.number_of_columns,
                number_of_drifted_columns=table.number_of_drifted_columns,
                share_of_drifted_columns=share,
                # Evidently's rule (legacy.calculations.data_drift.get_dataset_drift)
                dataset_drift=bool(share >= self.drift_share),
            )
            # How Evidently hands a legacy metric its result before rendering it.
            object.__setattr__(summary, "get_result", lambda: figures)
            return DataDriftMetricsRenderer().render_html(summary) + widgets

        def table(self) -> DataDriftTable:
            """The drift table, built as `DataDriftPreset.render` builds it."""
            return DataDriftTable(
                columns=self.columns,
                stattest=self.method,
                cat_stattest=self.cat_method,
                num_stattest=self.num_method,
                text_stattest=self.text_method,
                per_column_stattest=self.per_column_method,
                stattest_threshold=self.threshold,
                cat_stattest_threshold=self.cat_threshold,
                num_stattest_threshold=self.num_threshold,
                text_stattest_threshold=self.text_threshold,
                per_column_stattest_threshold=self.per_column_threshold,
            )

        def table_result(self, snapshot):  # noqa: ANN001, ANN201 - Evidently's types
            """The table's result in a report run with this preset (computed by its render)."""
            return snapshot.context.get_legacy_metric(
                self.table(), _default_input_data_generator, None
            )[0]

    return DriftTablePreset


class _LastReference:
    """The Evidently dataset of the last reference frame compared (column statistics over all
    its rows, ~60 ms for a 35,000-row reference), made again only when the frame's rows,
    columns or column kinds differ: a champion's reference is the same rows every day
    (`reference.py`), until the champion changes. The frame is identified by a digest of its
    index and values (~9 ms), not by the object, which is read afresh each day."""

    def __init__(self):
        self.last: tuple[tuple, object] | None = None  # (key, dataset), replaced as one

    def dataset(self, frame: pd.DataFrame, numerical: list[str], categorical: list[str]):
        from evidently import DataDefinition, Dataset

        rows = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy())
        rows.update(repr([(c, str(t)) for c, t in frame.dtypes.items()]).encode())
        key = (rows.hexdigest(), tuple(numerical), tuple(categorical))
        last = self.last
        if last is not None and last[0] == key:
            return last[1]
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        dataset = Dataset.from_pandas(frame, data_definition=definition)
        self.last = (key, dataset)
        return dataset


_REFERENCE = _LastReference()


def _evidently_threshold(value: float) -> float:
    # Evidently flags value >= threshold; the calibrated rule is value > threshold.
    return float(np.nextafter(value, np.inf)) if math.isfinite(value) else 1e300


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: ModelSpec,
    calibration: Calibration | None = None,
    title: str | None = None,
) -> DriftResult:
    """Both frames hold the monitored feature columns and `score` (and `label`, NaN where not
    known yet, for the label shift). Thresholds: `calibration`'s, else the spec's fixed ones."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    if reference.empty or current.empty:
        raise ValueError(
            f"drift needs rows on both sides: reference {len(reference)}, current {len(current)}"
        )
    numeric, categorical = monitored_columns(spec)
    monitored = [*numeric, *categorical]
    # Which columns have a value on each side: one pass over each frame.
    present = reference[monitored].notna().any() & current[monitored].notna().any()
    empty = [c for c in monitored if not present[c]]
    numeric = [c for c in numeric if c not in empty]
    categorical = [c for c in categorical if c not in empty]
    thresholds = {**fixed_thresholds(spec), **(calibration.thresholds if calibration else {})}
    has_label = (
        LABEL in reference.columns
        and LABEL in current.columns
        and reference[LABEL].notna().any()
        and current[LABEL].notna().any()
    )
    label_numeric = [LABEL] if has_label and spec.task == "regression" else []
    label_categorical = [LABEL] if has_label and spec.task == "classification" else []
    definition = DataDefinition(
        numerical_columns=[*numeric, SCORE, *label_numeric],
        categorical_columns=[*categorical, *label_categorical],
    )
    method = spec.drift.method
    features = [*numeric, *categorical]
    table = drift_table_preset()(
        columns=features,
        method=method,
        per_column_threshold={c: _evidently_threshold(thresholds[c]) for c in features},
        drift_share=spec.drift.share_threshold,
    )
    metrics = [
        table,
        ValueDrift(column=SCORE, method=method, threshold=_evidently_threshold(thresholds[SCORE])),
    ]
    if has_label:
        metrics.append(
            ValueDrift(
                column=LABEL, method=method, threshold=_evidently_threshold(thresholds[LABEL])
            )
        )
    columns = [*features, SCORE, *([LABEL] if has_label else [])]
    metadata = {"title": title} if title else None
    snapshot = Report(metrics, metadata=metadata).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        _REFERENCE.dataset(
            reference[columns],
            [*numeric, SCORE, *label_numeric],
            [*categorical, *label_categorical],
        ),
        name=title,
    )
    columns = table.table_result(snapshot)
    per_feature = {c: float(v.drift_score) for c, v in columns.drift_by_columns.items()}
    share, prediction, label = float(columns.share_of_drifted_columns), None, math.nan
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift" and config["column"] == SCORE:
            prediction = float(metric["value"])
        elif kind == "ValueDrift" and config["column"] == LABEL:
            label = float(metric["value"])
    if prediction is None:
        raise RuntimeError("Evidently returned no prediction drift")
    # psi/wasserstein/jensenshannon are distances: above the threshold means drift.
    drifted = sorted(c for c, v in per_feature.items() if v > thresholds[c])
    return DriftResult(
        share,
        drifted,
        per_feature,
        prediction,
        len(reference),
        len(current),
        snapshot,
        empty,
        {c: float(t) for c, t in thresholds.items() if c in (*per_feature, SCORE, LABEL)},
        label,
        calibration,
    )
