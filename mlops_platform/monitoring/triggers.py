"""When to retrain: the decision the sensor applies to the latest monitoring results (pure)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from mlops_platform.model import tags as t
from mlops_platform.specs import ModelSpec


@dataclass
class Decision:
    fire: bool
    reason: str
    tags: dict[str, str] = field(default_factory=dict)


def _drift_reasons(spec: ModelSpec, drift: dict) -> tuple[list[str], str | None, list[str]]:
    """What in a drift result calls for a retrain: the alarms the drift report raised (with
    its calibrated thresholds and false-alarm rate), or, for a result without them, the spec's
    fixed thresholds; and the alarms raised that the spec does not retrain on
    (`drift.retrain_on`)."""
    share, prediction = drift.get("drift_share"), drift.get("prediction_drift")
    calibrated = "drift_alarms" in drift
    alarms = set(str(drift.get("drift_alarms", "")).split(", ")) if calibrated else set()
    alarms -= {"none", ""}  # the drift asset writes "none" when nothing alarmed
    if not calibrated:
        if share is not None and share > spec.drift.share_threshold:
            alarms.add("features")
        if prediction is not None and prediction > spec.drift.prediction_threshold:
            alarms.add("score")
    ignored = sorted(alarms - set(spec.drift.retrain_on))
    alarms -= set(ignored)  # reported on the drift asset, not reasons to retrain
    reasons, trigger = [], None
    if "features" in alarms:
        reasons.append(
            f"drift share {share:.2f} > {spec.drift.share_threshold} "
            f"({drift.get('drifted_features', '?')})"
        )
        trigger = "drift"
    if "score" in alarms:
        reasons.append(f"prediction drift {prediction:.3f} beyond its threshold")
        trigger = trigger or "prediction_drift"
    if "label" in alarms:
        reasons.append(
            f"label shift {drift.get('label_shift', float('nan')):.3f} beyond its threshold"
        )
        trigger = trigger or "label_shift"
    if reasons and calibrated:
        reasons[-1] += f" [{drift.get('calibration', 'calibrated')}]"
    return reasons, trigger, ignored


def model_age_days(day: str, trained_to: str | None) -> int | None:
    """Days from the last day the model learnt from to the monitored `day` (None: unknown)."""
    if not trained_to:
        return None
    return (dt.date.fromisoformat(day) - dt.date.fromisoformat(str(trained_to)[:10])).days


@dataclass(frozen=True)
class Pace:
    """How fast the champion's world was moving when it was promoted, from its own gate: its
    gain on the primary metric over the champion it replaced, on its held-out rows (positive:
    better, whichever way the metric points), and the days between the two models' training
    data ends. A model that far staler lost that much: the gain per day is what a day of
    staleness costs, seen on the newest data there was."""

    gain: float
    days: int

    @property
    def per_day(self) -> float:
        """The primary metric a day of age costs (0 when the gain was none or unknown)."""
        if not self.days > 0 or not self.gain > 0:  # NaN included
            return 0.0
        return self.gain / self.days

    def describe(self) -> str:
        return f"gain {self.gain:+.4f} over a model {self.days} days staler"

    @staticmethod
    def pooled(paces: list[Pace | None]) -> Pace | None:
        """Several comparisons as one pace: their total gain over their total days (one
        week's gain is a noisy pace; a rejected challenger's small or negative gain counts
        as it was measured). None when none is known."""
        known = [p for p in paces if p is not None and p.gain == p.gain]
        if not known:
            return None
        return Pace(sum(p.gain for p in known), sum(p.days for p in known))

    @staticmethod
    def metadata_of(pace: Pace | None) -> dict:
        """The pace as a monitoring result carries it to the retraining sensor."""
        return {} if pace is None else {"champion_gain": pace.gain, "champion_gain_days": pace.days}

    @staticmethod
    def from_metadata(metadata: dict | None) -> Pace | None:
        """The pace a monitoring result names (None: it names none)."""
        if not metadata or metadata.get("champion_gain") is None:
            return None
        return Pace(float(metadata["champion_gain"]), int(metadata["champion_gain_days"]))


def pace_of(
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    metric: str,
    higher_is_better: bool,
    days: int | None,
) -> Pace | None:
    """The pace a gate's figures show (a promoted version's recorded gate summary and the
    days between its training data end and its predecessor's); None when there was no
    champion to compare with (a first model) or a figure is missing."""
    if not champion_metrics or days is None:
        return None
    ours, theirs = metrics.get(metric), champion_metrics.get(metric)
    if ours is None or theirs is None:
        return None
    gain = ours - theirs if higher_is_better else theirs - ours
    return Pace(float(gain), int(days))


def age_limit(spec: ModelSpec, pace: Pace | None) -> int | None:
    """The champion's maximum age (None: no limit). Fixed at `drift.max_model_age_days`
    unless `drift.age_loss_budget` is set: then the champion is due when the loss it is
    expected to have built up since it was born, at its own promotion's pace, reaches the
    budget (newborn age + budget / loss per day), bounded by `min_model_age_days` and
    `max_model_age_days`. A world that moved fast (a large gain) brings the next retrain
    sooner; a small gain, no gain, or no evidence (a first model) leaves the longest limit."""
    drift = spec.drift
    longest = drift.max_model_age_days
    if longest is None or drift.age_loss_budget is None or pace is None:
        return longest
    if pace.per_day <= 0:
        return longest
    due = spec.newborn_age_days + math.ceil(drift.age_loss_budget / pace.per_day)
    shortest = drift.min_model_age_days or spec.newborn_age_days + 1
    return max(shortest, min(longest, due))


def replaced_since(spec: ModelSpec, trigger_day: str, trained_to: str | None) -> bool | None:
    """Whether the champion (training data to `trained_to`) came from a retrain started on or
    after `trigger_day`: a model trained then learnt up to `newborn_age_days` before it, so a
    champion whose data end earlier was there before (the challenger was rejected, or its
    training failed). None: unknown."""
    age = model_age_days(trigger_day, trained_to)
    return None if age is None else age <= spec.newborn_age_days


def cooldown_days(spec: ModelSpec, trigger_day: str, trained_to: str | None) -> int:
    """Days after a trigger before the next: `drift.cooldown_days` gives a new champion time
    to show itself. When the champion was not replaced there is nothing to wait for but data a
    new challenger can be judged on: a held-out period that does not overlap the rejected one's
    (`holdout_days`, if shorter), while the reason (an age, a drift) still holds. A spec whose
    promotions wait for a person's approval keeps the cooldown: its challenger may be waiting,
    not rejected."""
    if not spec.approval.required and replaced_since(spec, trigger_day, trained_to) is False:
        return min(spec.drift.cooldown_days, spec.holdout_days)
    return spec.drift.cooldown_days


def decide_retrain(
    spec: ModelSpec,
    day: str,
    drift: dict | None,
    performance: dict | None,
    last_trigger_day: str | None,
    trained_to: str | None = None,
    pace: Pace | None = None,
) -> Decision:
    """Fire when the drift report raised an alarm (a full window beyond its calibrated
    thresholds), the performance drop is significant, or the champion is older than
    its age limit (its training data ended `trained_to`; `age_limit`: fixed, or adapted to
    the `pace` its promotion showed), unless a retrain was
    triggered less than `cooldown_days` before `day` (the same episode); after a trigger
    whose challenger did not replace the champion, the wait is `holdout_days` if shorter (a
    fresh held-out period for the next challenger).

    The age limit is a staleness bound, not a detector: calibrated drift and a significant
    drop are built to stay quiet on ordinary weeks, so a slow change that neither can prove
    would otherwise keep a champion forever."""
    reasons, trigger, ignored = [], None, []
    if drift is not None and drift.get("window_full", True) is not False:
        reasons, trigger, ignored = _drift_reasons(spec, drift)
    if performance is not None:
        drop = performance.get("performance_drop")
        significant = performance.get("significant_drop")
        if significant is None:  # a result from before the significance rule
            significant = drop is not None and drop == drop and drop > spec.drift.performance_drop
        if significant:
            reasons.append(
                performance.get("verdict")
                or f"{spec.gate.primary_metric} dropped {drop:.3f} > {spec.drift.performance_drop}"
            )
            trigger = trigger or "performance"
    age, limit = model_age_days(day, trained_to), age_limit(spec, pace)
    if limit is not None and age is not None and age >= limit:
        basis = "max_model_age_days"
        if spec.drift.age_loss_budget is not None:
            basis = f"age_loss_budget {spec.drift.age_loss_budget}, " + (
                pace.describe() if pace is not None else "no gain measured"
            )
        reasons.append(
            f"model age {age} days >= {limit} ({basis}; trained on data to {str(trained_to)[:10]})"
        )
        trigger = trigger or "age"
    if not reasons:
        aside = f" (alarms not retrained on: {', '.join(ignored)})" if ignored else ""
        return Decision(False, f"{day}: within thresholds{aside}")
    if last_trigger_day is not None:
        since = (dt.date.fromisoformat(day) - dt.date.fromisoformat(last_trigger_day)).days
        cooldown = cooldown_days(spec, last_trigger_day, trained_to)
        # A day before the last trigger (monitored again: a retried run, a scores backfill) is
        # part of the episode that trigger answered: it never starts another retrain.
        if since < cooldown:
            why = f"{since} < {cooldown} days" if since >= 0 else "after this day"
            if cooldown < spec.drift.cooldown_days:
                why += ", its challenger was not promoted"
            return Decision(
                False,
                f"{day}: {'; '.join(reasons)} — but a retrain was triggered "
                f"on {last_trigger_day} ({why})",
            )
    reason = "; ".join(reasons)
    return Decision(
        True,
        reason,
        {
            t.RUN_TRIGGER: trigger,
            t.RUN_REASON: reason[:1000],
            t.RUN_MONITORED_DAY: day,
            t.RUN_RUNBOOK: "docs/runbooks/drift-alert.md",
        },
    )
