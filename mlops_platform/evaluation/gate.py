"""Score models on the held-out window and decide whether a challenger may be promoted.

Plain functions: `evaluate` scores one model (overall, per slice), `measure_latency` times the
challenger and the champion through the serving path in the same process; `decide` applies the
spec's gate to the challenger's evaluation and, when there is one, the champion's on the same
rows. An evaluation that cannot run raises; it never reports a made-up score.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import pandas as pd

from mlops_platform.model.columns import LABEL
from mlops_platform.model.input import model_input, normalize
from mlops_platform.model.metrics import compute_metrics, worse_by
from mlops_platform.model.predict import predict
from mlops_platform.model.scorer import FastScorer
from mlops_platform.model.version import GateSummary
from mlops_platform.specs import ModelSpec


@dataclass
class Evaluation:
    version: str
    rows: int
    metrics: dict[str, float]
    slices: dict[str, float]  # "<column>=<value>" -> primary metric
    slice_rows: dict[str, int]
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_rounds: int = 0
    #: against the champion, from calls paired with its calls (set on the challenger)
    latency_vs_champion: dict[str, PairedLatency] = field(default_factory=dict)


@dataclass
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass
class GateResult:
    passed: bool
    checks: list[GateCheck]
    challenger: Evaluation
    champion: Evaluation | None

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> GateSummary:
        """The verdict as recorded on the version (and signed, when it passed)."""
        champion = self.champion
        return GateSummary(
            passed=self.passed,
            challenger=self.challenger.version,
            champion=champion.version if champion else None,
            metrics={k: round(v, 5) for k, v in self.challenger.metrics.items()},
            champion_metrics=(
                {k: round(v, 5) for k, v in champion.metrics.items()} if champion else None
            ),
            failed_checks=[c.name for c in self.failures],
            latency_ms={k: round(v, 2) for k, v in self.challenger.latency_ms.items()},
            champion_latency_ms=(
                {k: round(v, 2) for k, v in champion.latency_ms.items()} if champion else None
            ),
            latency_rounds=self.challenger.latency_rounds,
        )


def slice_keys(spec: ModelSpec, holdout: pd.DataFrame) -> list[tuple[str, str]]:
    """The slices the gate looks at: the largest values of each slice column, if big enough."""
    keys = []
    for column in spec.gate.slice_columns:
        counts = holdout[column].value_counts()
        counts = counts[counts >= spec.gate.min_slice_rows].head(spec.gate.top_slices)
        keys += [(column, str(value)) for value in counts.index]
    return keys


#: Below this, a challenger slower than the champion is timer noise, not a slower model.
LATENCY_NOISE_MS = 1.0
#: Calls per model and round, challenger and champion alternating call by call (odd counts:
#: a median that is one call's figure).
LATENCY_CALLS = {"single_row_ms": 25, "rows_1000_ms": 15}


@dataclass(frozen=True)
class PairedLatency:
    """Challenger against champion from calls made in pairs, one right after the other (so a
    neighbour slows both calls of a pair alike): the median over the pairs of the challenger's
    time divided by the champion's, and of the difference in ms."""

    ratio: float
    difference_ms: float
    pairs: int

    @classmethod
    def of(cls, challenger_ms: list[float], champion_ms: list[float]) -> PairedLatency:
        pairs = list(zip(challenger_ms, champion_ms, strict=True))
        if not pairs:
            raise ValueError("no paired calls to compare")
        return cls(
            ratio=statistics.median(c / h if h > 0 else float("inf") for c, h in pairs),
            difference_ms=statistics.median(c - h for c, h in pairs),
            pairs=len(pairs),
        )


@dataclass(frozen=True)
class LatencyMeasurement:
    """Each model's best round median of CPU ms per call (`rounds` of LATENCY_CALLS calls per
    model) and, with a champion, the comparison over every pair of calls (`vs_champion`):
    both models called alternately, call by call, in one process."""

    challenger: dict[str, float]
    champion: dict[str, float] | None
    rounds: int
    vs_champion: dict[str, PairedLatency] | None = None

    def record(self, challenger: Evaluation, champion: Evaluation | None = None) -> None:
        """Put the figures on the evaluations `decide` judges."""
        challenger.latency_ms, challenger.latency_rounds = self.challenger, self.rounds
        challenger.latency_vs_champion = dict(self.vs_champion or {})
        if champion is not None:
            champion.latency_ms = self.champion or {}


def latency_verdict(
    challenger_ms: float,
    champion_ms: float | None,
    ceiling_ms: float,
    max_ratio: float,
    paired: PairedLatency | None = None,
) -> tuple[bool, str]:
    """The latency rule: under the absolute ceiling and, when there is a champion measured
    alongside, at most `max_ratio` times its time (differences under LATENCY_NOISE_MS pass).
    With `paired` calls the ratio and the difference are theirs (medians over the pairs),
    which a neighbour slowing the machine for a while cannot skew; without, the two figures'."""
    detail = f"{challenger_ms:.2f} ms (ceiling {ceiling_ms:g} ms"
    if challenger_ms > ceiling_ms:
        return False, detail + ")"
    if champion_ms is None:
        return True, detail + ", no champion to compare with)"
    if paired is not None:
        ratio, difference = paired.ratio, paired.difference_ms
        how = f"ratio {ratio:.2f} (median of {paired.pairs} paired calls)"
    else:
        ratio = challenger_ms / champion_ms if champion_ms > 0 else float("inf")
        difference, how = challenger_ms - champion_ms, f"ratio {ratio:.2f}"
    detail += f"; champion {champion_ms:.2f} ms, {how}, at most {max_ratio:g})"
    slower = difference > LATENCY_NOISE_MS
    return not (slower and ratio > max_ratio), detail


def _serving_call(scorer: FastScorer, frame: pd.DataFrame, spec: ModelSpec):
    """One scoring of `frame` as the serving API does it once the request is parsed:
    normalise the columns, build the matrix, score (compiled trees for small batches)."""
    rows = len(frame)
    columns = {c: frame[c].tolist() for c in spec.features.columns}

    def call() -> None:
        scorer.score(scorer.matrix(normalize(columns, rows, spec), rows))

    return call


def _cpu_ms(call) -> float:
    """CPU time of `call` on this thread (the scorer runs on the calling thread, threads
    pinned to one): what a request costs the model (wall time on a loaded 2-core machine
    measures the neighbours; serving's wall latency is `make bench-serve`'s). A neighbour
    can still inflate it (a shared cache, a core time-shared), and unevenly over time."""
    started = time.thread_time()
    call()
    return (time.thread_time() - started) * 1000


def _paired_calls(calls: list, repeats: int) -> list[list[float]]:
    """`repeats` times one call of each of `calls`, one right after the other, the order
    turned round every time (no model always goes first): each call's CPU times."""
    times = [[] for _ in calls]
    for i in range(repeats):
        for j in range(len(calls)) if i % 2 == 0 else reversed(range(len(calls))):
            times[j].append(_cpu_ms(calls[j]))
    return times


def measure_latency(
    model, holdout: pd.DataFrame, spec: ModelSpec, champion_model=None
) -> LatencyMeasurement:
    """Time one row and 1,000 rows through the serving path, threads pinned to one (as a
    replica on a shared machine runs; OpenMP's default threads make single rows 10x slower
    when another process uses the CPU). Challenger and champion are called alternately, call
    by call, so both meet the same neighbours, and compared pair by pair over every call made
    (`PairedLatency`): a neighbour's burst slows both calls of the pairs it covers, and leaves
    the median over the pairs alone. Each model's figure is its best round's median (a
    neighbour only adds time). Rounds of LATENCY_CALLS calls per model repeat until the gate's
    latency rule passes or the spec's rounds run out: a fixed number of calls at most,
    whatever the clock says."""
    from threadpoolctl import threadpool_limits

    frames = {
        "single_row_ms": holdout.head(1),
        "rows_1000_ms": holdout.sample(n=1000, replace=len(holdout) < 1000, random_state=0),
    }
    models = {"challenger": model, "champion": champion_model}
    # One scorer per model, as a replica holds one for every request (it never changes once
    # built): compiling the trees once, not once per frame.
    scorers = {who: FastScorer(m, spec) for who, m in models.items() if m is not None}
    calls = {
        label: [_serving_call(scorer, frame, spec) for scorer in scorers.values()]
        for label, frame in frames.items()
    }
    # per batch size, per model (challenger first): every call's ms, and the best round median
    made = {label: [[] for _ in scorers] for label in frames}
    best = {label: [float("inf") for _ in scorers] for label in frames}
    rounds = 0
    with threadpool_limits(limits=1):
        for pair in calls.values():
            for call in pair:
                call()  # warm-up
        while rounds < spec.gate.latency_rounds:
            rounds += 1
            for label, pair in calls.items():
                for k, times in enumerate(_paired_calls(pair, LATENCY_CALLS[label])):
                    made[label][k] += times
                    best[label][k] = min(best[label][k], statistics.median(times))
            challenger = {label: ms[0] for label, ms in best.items()}
            champion, paired = None, None
            if champion_model is not None:
                champion = {label: ms[1] for label, ms in best.items()}
                paired = {label: PairedLatency.of(*times) for label, times in made.items()}
            if all(c.passed for c in latency_checks(spec, challenger, champion, paired)):
                break
    return LatencyMeasurement(challenger, champion, rounds, paired)


def latency_checks(
    spec: ModelSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    vs_champion: dict[str, PairedLatency] | None = None,
) -> list[GateCheck]:
    gate, checks = spec.gate, []
    for name, label, ceiling in (
        ("latency:single_row", "single_row_ms", gate.latency_single_row_ms),
        ("latency:1000_rows", "rows_1000_ms", gate.latency_1000_rows_ms),
    ):
        if label not in challenger:
            raise ValueError("latency was not measured: the gate cannot decide")
        passed, detail = latency_verdict(
            challenger[label],
            champion.get(label) if champion else None,
            ceiling,
            gate.latency_max_ratio_to_champion,
            (vs_champion or {}).get(label) if champion else None,
        )
        checks.append(GateCheck(name, passed, detail))
    return checks


def evaluate(
    model, version: str, holdout: pd.DataFrame, spec: ModelSpec, latency: bool = True
) -> Evaluation:
    """Metrics overall and per slice; with `latency`, the model's latency on its own (the
    gate measures challenger and champion together instead: `measure_latency`)."""
    prediction = predict(model, holdout, spec)
    y = holdout[LABEL].to_numpy()
    slices, slice_rows = {}, {}
    for column, value in slice_keys(spec, holdout):
        mask = (holdout[column].astype(str) == value).to_numpy()
        slices[f"{column}={value}"] = compute_metrics(spec, y[mask], prediction[mask])[
            spec.gate.primary_metric
        ]
        slice_rows[f"{column}={value}"] = int(mask.sum())
    evaluation = Evaluation(
        version=version,
        rows=len(holdout),
        metrics=compute_metrics(spec, y, prediction),
        slices=slices,
        slice_rows=slice_rows,
    )
    if latency:
        measure_latency(model, holdout, spec).record(evaluation)
    return evaluation


def _within(floor, value: float) -> bool:
    return (floor.min is None or value >= floor.min) and (floor.max is None or value <= floor.max)


def floor_check(
    spec: ModelSpec, metric: str, floor, challenger: Evaluation, champion: Evaluation | None
) -> GateCheck:
    """The challenger's `metric` against the spec's absolute bar. A challenger below the bar
    still passes this check when the champion, on the same held-out rows, misses the bar too
    and does worse than the challenger (`gate.replace_champion_below_floor`): the check then
    says so, and the champion comparison below still applies."""
    value = challenger.metrics[metric]
    bound = f">= {floor.min}" if floor.min is not None else ""
    bound += f"{' and ' if bound and floor.max is not None else ''}"
    bound += f"<= {floor.max}" if floor.max is not None else ""
    detail = f"{value:.4f} (must be {bound})"
    if _within(floor, value):
        return GateCheck(f"floor:{metric}", True, detail)
    incumbent = champion.metrics.get(metric) if champion is not None else None
    if (
        spec.gate.replace_champion_below_floor
        and incumbent is not None
        and not _within(floor, incumbent)
        and worse_by(metric, incumbent, value) > 0
    ):
        return GateCheck(
            f"floor:{metric}",
            True,
            f"{detail}; below the bar, but champion v{champion.version} is worse on the same "
            f"rows ({incumbent:.4f}): replacing a model below the bar with a better one",
        )
    return GateCheck(f"floor:{metric}", False, detail)


def decide(spec: ModelSpec, challenger: Evaluation, champion: Evaluation | None) -> GateResult:
    gate, checks = spec.gate, []
    for metric, floor in gate.floors.items():
        checks.append(floor_check(spec, metric, floor, challenger, champion))

    primary = gate.primary_metric
    if champion is None:
        checks.append(GateCheck("vs_champion", True, "no champion yet: the floors decide"))
    else:
        worse = worse_by(primary, challenger.metrics[primary], champion.metrics[primary])
        checks.append(
            GateCheck(
                "vs_champion",
                worse <= gate.champion_tolerance,
                f"{primary} {challenger.metrics[primary]:.4f} vs champion v{champion.version} "
                f"{champion.metrics[primary]:.4f} (may be worse by {gate.champion_tolerance})",
            )
        )
        for key, value in challenger.slices.items():
            if key not in champion.slices:
                continue
            worse = worse_by(primary, value, champion.slices[key])
            checks.append(
                GateCheck(
                    f"slice:{key}",
                    worse <= gate.slice_tolerance,
                    f"{primary} {value:.4f} vs champion {champion.slices[key]:.4f} "
                    f"(may be worse by {gate.slice_tolerance})",
                )
            )

    champion_latency = champion.latency_ms if champion and champion.latency_ms else None
    checks += latency_checks(
        spec, challenger.latency_ms, champion_latency, challenger.latency_vs_champion
    )
    return GateResult(all(c.passed for c in checks), checks, challenger, champion)


def check_inputs(holdout: pd.DataFrame, spec: ModelSpec) -> None:
    """Fail loudly if the held-out rows cannot be scored (missing columns, no labels)."""
    model_input(holdout.head(1), spec)
    if holdout[LABEL].isna().any():
        raise ValueError("held-out rows must all be labelled")
