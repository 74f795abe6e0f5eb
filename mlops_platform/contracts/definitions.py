"""The contracts package's definitions: each `raw/<table>` asset with its blocking contract."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.contracts.checks import published_tables
from mlops_platform.ingestion.definitions import domains_of
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(assets=[a for d in domains_of(specs) for a in published_tables(d)])
