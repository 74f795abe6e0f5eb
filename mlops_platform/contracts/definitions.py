"""The contracts package's definitions: each `raw/<table>` asset with its blocking contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from mlops_platform.contracts.checks import published_tables
from mlops_platform.ingestion.definitions import domains_of

if TYPE_CHECKING:
    from mlops_platform.specs import ModelSpec  # typing only: specs import contracts


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(assets=[a for d in domains_of(specs) for a in published_tables(d)])
