"""The alerting package's definitions: every failed run becomes an incident and an alert."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.alerting.sensors import alert_on_run_failure
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(sensors=[alert_on_run_failure])
