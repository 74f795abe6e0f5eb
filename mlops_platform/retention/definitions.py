"""The retention package's definitions: the retention job and its daily schedule."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.retention.jobs import retention, retention_daily
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(jobs=[retention], schedules=[retention_daily])
