"""The code location: merges the definitions each concern package builds for the enabled specs,
and holds the only global policy (resources and executor of the active profile).

Each package has a `definitions.py` with `build_defs(specs)` (ingestion, contracts, features,
training, evaluation, registry, scoring, monitoring, alerting, retention); nothing is listed by
hand here. Adding a model means adding a spec file; its assets, jobs and triggers follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import dagster as dg

from mlops_platform.alerting import definitions as alerting
from mlops_platform.clock import Clock, time_at_load
from mlops_platform.contracts import definitions as contracts
from mlops_platform.evaluation import definitions as evaluation
from mlops_platform.features import definitions as features
from mlops_platform.ingestion import definitions as ingestion
from mlops_platform.monitoring import definitions as monitoring
from mlops_platform.profiles import daily_cycle_trigger, executor_for, resources_for
from mlops_platform.registry import definitions as registry
from mlops_platform.retention import definitions as retention
from mlops_platform.scoring import definitions as scoring
from mlops_platform.specs import ModelSpec, enabled_specs
from mlops_platform.training import definitions as training

#: `build_definitions(partitions_until=AT_CLOCK)`: partitions end at the clock resource's time.
AT_CLOCK = "clock"

#: What the domain and the platform share, whatever the specs.
SHARED = (ingestion, contracts, alerting, retention)


def spec_definitions(
    specs: Sequence[ModelSpec],
    trigger: str = "sensor",
    partitions_until: dt.datetime | dt.date | None = None,
) -> dg.Definitions:
    """Each spec's pipeline: features, model + gate, champion, scores, monitoring, the jobs
    over them and their triggers (`trigger`: how the cycle starts). Each spec's partitions are
    its domain's (cadence, range), ending at `partitions_until`'s last complete period if
    given, else at Dagster's own clock (see domains/partitions.py)."""
    return dg.Definitions.merge(
        *(package.build_defs(specs) for package in (features, training, evaluation, registry)),
        scoring.build_defs(specs, until=partitions_until),
        monitoring.build_defs(specs, trigger=trigger, until=partitions_until),
    )


def build_definitions(
    specs: Sequence[ModelSpec] | None = None,
    *,
    profile: str | None = None,
    resources: dict | None = None,
    partitions_until: dt.datetime | dt.date | Literal["clock"] | None = AT_CLOCK,
) -> dg.Definitions:
    """Every package's definitions for `specs` (default: the enabled specs), with the
    profile's resources (or `resources`) and executor.

    Partitions end at the last complete period before `partitions_until`; by default
    (`"clock"`) that is the `clock` resource's time now, so a period the clock has not reached
    is not a partition (the UI's "missing" means missing). The wall clock (production) is
    Dagster's own, which moves the end by itself; a clock table (the replay's) is read once,
    here, and the end stays until the code location reloads; a clock that cannot be read yet
    (no table on a fresh machine, a URL known only when a run starts) leaves Dagster's clock.
    None: no clock bound (the declared end, else Dagster's clock): for the replay, which moves
    the clock itself (see `clock.time_at_load`)."""
    specs = list(specs if specs is not None else enabled_specs())
    resources = resources if resources is not None else resources_for(profile)
    if partitions_until == AT_CLOCK:
        clock = resources.get("clock")
        partitions_until = time_at_load(clock) if isinstance(clock, Clock) else None
    return dg.Definitions.merge(
        *(package.build_defs(specs) for package in SHARED),
        spec_definitions(
            specs, trigger=daily_cycle_trigger(profile), partitions_until=partitions_until
        ),
        dg.Definitions(resources=resources, executor=executor_for(profile)),
    )


# The only module-level Definitions: Dagster refuses a module that holds more than one.
defs = build_definitions()
