"""The contracts package's definitions: each `raw/<table>` asset with its blocking contract."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.contracts.checks import published_tables
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(assets=published_tables)
