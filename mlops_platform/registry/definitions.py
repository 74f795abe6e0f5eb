"""The registry package's definitions: `<spec>/registry` (promotion to champion) and the
governance jobs (approve a held promotion, roll back)."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.registry.assets import build_champion_asset
from mlops_platform.registry.jobs import approve_model, rollback_model
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(
        assets=[build_champion_asset(spec) for spec in specs],
        jobs=[approve_model, rollback_model],
    )
