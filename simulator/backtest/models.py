"""Models of the backtest: trained, scored, referenced and gated with the platform's functions,
each computed once and shared by every policy that reaches the same thing.

A model is identified by its time split: two policies retraining on the same day train on the
same rows (labels arrived by the same clock), so they share one fit. Each cached result keeps
the seconds it cost, so a policy is charged what it would have paid on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn import __version__ as sklearn_version

from mlops_platform.evaluation.gate import GateResult, decide, evaluate, measure_latency
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.model.predict import predict
from mlops_platform.model.scorer import FastScorer
from mlops_platform.model.split import TimeSplit, holdout_of, plan_split, split_by_time
from mlops_platform.model.version import data_digest
from mlops_platform.monitoring.calibration import Calibration
from mlops_platform.monitoring.drift import calibrate_spec, column_kinds
from mlops_platform.monitoring.reference import (
    DAY,
    drift_reference_rows,
    performance_reference_rows,
)
from mlops_platform.training.params import Hyperparameters
from mlops_platform.training.train import fit
from simulator.backtest.drift import ReferenceColumn
from simulator.backtest.sources import History


class ExactScorer(FastScorer):
    """A model's compiled trees scoring exactly as its pipeline does, bit for bit
    (`FastScorer.score(exact=True)`, tested), wherever the platform's functions score with it
    (`predict` takes a `FastScorer` for a pipeline): the backtest's figures stay the pipeline's
    while scoring every step of every lane, the references and the gates at a fraction of the
    cost."""

    def score(self, matrix: np.ndarray, *, exact: bool = True) -> np.ndarray:
        return super().score(matrix, exact=True)


@dataclass
class Model:
    id: str
    split: TimeSplit
    estimator: object
    fit_seconds: float
    train_rows: int


@dataclass
class Monitoring:
    """What monitoring compares a model's live window against (per model, computed once)."""

    drift_reference: pd.DataFrame
    calibration: Calibration
    performance_reference: pd.DataFrame
    seconds: float


@dataclass
class Gated:
    result: GateResult
    seconds: float


def without_latency_bar(spec):
    """The spec with its latency ceilings lifted. A backtest does not judge latency: on a busy
    machine it measures the neighbours (a bootstrap model took 272 ms for 1,000 rows here
    under a load of 16, against a 250 ms ceiling), and every model of a spec has the same
    shape, so it is no property of a retraining policy. Floors, the champion comparison and
    slices are judged as the platform judges them."""
    inf = float("inf")
    gate = spec.gate.model_copy(
        update={
            "latency_single_row_ms": inf,
            "latency_1000_rows_ms": inf,
            "latency_max_ratio_to_champion": inf,
            "latency_rounds": 1,
        }
    )
    return spec.model_copy(update={"gate": gate})


@dataclass
class Lab:
    """Trains, scores and gates for every policy, once per distinct thing."""

    history: History
    params: Hyperparameters = field(default_factory=Hyperparameters)
    #: Where fitted models are kept between backtests (None: nowhere). Our own files, written
    #: by this process: loading them is loading our own pickles, never a downloaded artifact.
    cache_dir: Path | None = None
    #: OpenMP threads of a fit (None: the library's default, every core). One thread is
    #: slower on an idle machine but far faster on a busy one, where threads wait on each other.
    threads: int | None = None
    models: dict[TimeSplit, Model] = field(default_factory=dict)
    _scores: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    _scorers: dict[str, ExactScorer] = field(default_factory=dict)
    _monitoring: dict[str, Monitoring] = field(default_factory=dict)
    _gates: dict[tuple[str, str], Gated] = field(default_factory=dict)
    _columns: dict[str, dict[str, ReferenceColumn]] = field(default_factory=dict)
    _by_id: dict[str, Model] = field(default_factory=dict)
    #: Fits started ahead in worker processes (see `prefetch`), by split.
    prefetched: dict[TimeSplit, Future] = field(default_factory=dict)

    @property
    def spec(self):
        return self.history.spec

    def known(self, clock: pd.Timestamp) -> np.ndarray:
        """Rows whose label has arrived by `clock`."""
        table = self.history.table
        return table[LABEL].notna().to_numpy() & (self.history.arrives <= clock.to_datetime64())

    def table_at(self, clock: pd.Timestamp) -> pd.DataFrame:
        """The feature table as the platform sees it at `clock`: labels not yet arrived are
        NaN (as they are in the warehouse's feature table then)."""
        table = self.history.table
        return table.assign(**{LABEL: table[LABEL].where(self.known(clock))})

    def planned_split(self, clock: pd.Timestamp) -> TimeSplit:
        """The split the training step plans at `clock` (`model.split.plan_split`)."""
        known = self.known(clock)
        if not known.any():
            raise ValueError(f"no labelled rows by {clock}")
        last = pd.Timestamp(self.history.table[EVENT_DATE].to_numpy()[known].max()).date()
        return plan_split(last, self.spec)

    def train(self, clock: pd.Timestamp) -> Model:
        """The model the platform's training step would fit at `clock` (cached by its split);
        raises ValueError when there is too little labelled data, as the step does."""
        planned = self.planned_split(clock)
        if planned in self.models:
            return self.models[planned]
        if planned in self.prefetched:  # being fitted by a worker: wait, then read its file
            self.prefetched.pop(planned).result()
        train, _, split = split_by_time(self.table_at(clock), self.spec)
        estimator, seconds = self._fit(train, split)
        model = Model(
            f"m{len(self.models)}:{split.train_end}", split, estimator, seconds, len(train)
        )
        self.models[split] = self._by_id[model.id] = model
        return model

    def _fit(self, train: pd.DataFrame, split: TimeSplit) -> tuple[object, float]:
        """`training.train.fit`, or its result kept on disk by an earlier backtest of the same
        spec, hyperparameters, split and rows (`cache_dir`), with the seconds it took then."""
        path = None
        if self.cache_dir is not None:
            identity = json.dumps(
                [
                    self.spec.features.model_dump(),
                    self.spec.target.model_dump(),
                    self.spec.task,
                    self.params.as_dict(),
                    split.to_tags(),
                    data_digest(train[[*self.spec.features.columns, LABEL]]),
                    sklearn_version,
                ],
                sort_keys=True,
                default=str,
            )
            digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
            path = Path(self.cache_dir) / f"{self.spec.name}-{split.train_end}-{digest}.joblib"
            if path.exists():
                try:
                    return joblib.load(path)
                except Exception:  # noqa: BLE001 - a fit cut short (an older run killed mid-write): fit again
                    path.unlink(missing_ok=True)
        from threadpoolctl import threadpool_limits

        started = time.process_time()  # CPU seconds: what it costs, however busy the machine
        with threadpool_limits(limits=self.threads):
            estimator = fit(self.spec, train, self.params)
        seconds = time.process_time() - started
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then renamed: a backtest stopped mid-write (`make year` stops it
            # with the replay) leaves no truncated fit for the next run to load.
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            joblib.dump((estimator, seconds), partial)
            os.replace(partial, path)
        return estimator, seconds

    def scorer(self, model: Model) -> ExactScorer:
        """The model's compiled trees (built once): its pipeline's scores, bit for bit."""
        if model.id not in self._scorers:
            self._scorers[model.id] = ExactScorer(model.estimator, self.spec)
        return self._scorers[model.id]

    def scores(self, model: Model, step: int, rows: np.ndarray) -> np.ndarray:
        """The model's scores of `rows` (positions in the table), cached per step."""
        key = (model.id, step)
        if key not in self._scores:
            frame = self.history.table.iloc[rows]
            scorer = self.scorer(model)
            self._scores[key] = predict(scorer, frame, self.spec) if len(rows) else rows
        return self._scores[key]

    def monitoring(self, model: Model) -> Monitoring:
        """Its drift reference (calibrated on its own windows) and its held-out scores, built
        from the rows known when it was trained (the same functions monitoring calls)."""
        if model.id not in self._monitoring:
            started = time.process_time()
            table = self.history.table  # the reference windows' labels had all arrived
            scorer = self.scorer(model)
            reference = drift_reference_rows(self.spec, table, model.split, scorer)
            calibration = calibrate_spec(reference, self.spec, reference[DAY])
            performance = performance_reference_rows(self.spec, table, model.split, scorer)
            self._monitoring[model.id] = Monitoring(
                reference, calibration, performance, time.process_time() - started
            )
        return self._monitoring[model.id]

    def reference_columns(self, model: Model) -> dict[str, ReferenceColumn]:
        """Its drift reference's monitored columns, prepared once for the daily statistic."""
        if model.id not in self._columns:
            reference = self.monitoring(model).drift_reference
            kinds = column_kinds(self.spec)
            self._columns[model.id] = {
                c: ReferenceColumn.of(reference[c], k)
                for c, k in kinds.items()
                if c in reference.columns
            }
        return self._columns[model.id]

    def gate(self, challenger: Model, champion: Model | None, clock: pd.Timestamp) -> Gated:
        """The platform's gate (`evaluation.run.run_gate` without the registry): both models on
        the challenger's held-out rows, latency measured together, `decide`; latency is
        measured and reported but not judged (`without_latency_bar`)."""
        key = (challenger.id, champion.id if champion else "")
        if key not in self._gates:
            started = time.process_time()
            holdout = holdout_of(self.table_at(clock), challenger.split)
            ours = evaluate(
                self.scorer(challenger), challenger.id, holdout, self.spec, latency=False
            )
            theirs = None
            if champion is not None:
                theirs = evaluate(
                    self.scorer(champion), champion.id, holdout, self.spec, latency=False
                )
            spec = without_latency_bar(self.spec)
            latency = measure_latency(
                challenger.estimator, holdout, spec, champion.estimator if champion else None
            )
            latency.record(ours, theirs)
            result = decide(spec, ours, theirs)
            self._gates[key] = Gated(result, time.process_time() - started)
        return self._gates[key]


#: The lab a prefetch worker trains with (set before the workers fork, so they share it).
_WORKER_LAB: Lab | None = None


def _fit_ahead(clock: pd.Timestamp) -> None:
    _WORKER_LAB.train(clock)


def prefetch(lab: Lab, clocks: list[pd.Timestamp], workers: int) -> ProcessPoolExecutor | None:
    """Fit the models of `clocks` (known in advance: a fixed cadence's) in `workers` forked
    processes into `lab.cache_dir`, while the walk goes on; `lab.train` waits for one it
    needs. Start it before the parent fits anything (OpenMP does not survive a fork)."""
    global _WORKER_LAB
    if workers < 1 or lab.cache_dir is None or not clocks:
        return None
    import multiprocessing

    _WORKER_LAB = lab
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    for clock in clocks:
        try:
            split = lab.planned_split(clock)
        except ValueError:
            continue
        if split not in lab.prefetched:
            lab.prefetched[split] = pool.submit(_fit_ahead, clock)
    return pool
