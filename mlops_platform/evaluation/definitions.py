"""The evaluation package's definitions: the blocking gate check on each `<spec>/model`."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.evaluation.checks import build_gate_check
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(asset_checks=[build_gate_check(spec) for spec in specs])
