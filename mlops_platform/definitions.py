"""The code location: merges the definitions each concern package builds for the enabled specs,
and holds the only global policy (resources and executor of the active profile).

Each package has a `definitions.py` with `build_defs(specs)` (ingestion, contracts, features,
training, evaluation, registry, scoring, monitoring, alerting, retention); nothing is listed by
hand here. Adding a model means adding a spec file; its assets, jobs and triggers follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from mlops_platform.alerting import definitions as alerting
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
    partitions_until: dt.datetime | dt.date | None = None,
) -> dg.Definitions:
    """Every package's definitions for `specs` (default: the enabled specs), with the
    profile's resources (or `resources`) and executor. `partitions_until`: the clock's time
    when the definitions are built, for a clock Dagster does not know (a replay's; see
    `clock.time_at_load`); None: partitions end at Dagster's own (wall) clock."""
    specs = list(specs if specs is not None else enabled_specs())
    return dg.Definitions.merge(
        *(package.build_defs(specs) for package in SHARED),
        spec_definitions(
            specs, trigger=daily_cycle_trigger(profile), partitions_until=partitions_until
        ),
        dg.Definitions(
            resources=resources if resources is not None else resources_for(profile),
            executor=executor_for(profile),
        ),
    )


# The only module-level Definitions: Dagster refuses a module that holds more than one.
defs = build_definitions()
