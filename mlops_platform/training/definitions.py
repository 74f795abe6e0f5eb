"""The training package's definitions: `<spec>/model` (a new challenger version) and the
`train_<spec>` job: features -> train -> gate -> promotion."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.asset_keys import FEATURES, MODEL, REGISTRY, stage_key
from mlops_platform.specs import ModelSpec
from mlops_platform.training.assets import build_model_asset


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    return dg.Definitions(
        assets=[build_model_asset(spec) for spec in specs],
        jobs=[
            dg.define_asset_job(
                f"train_{spec.name}",
                selection=dg.AssetSelection.assets(
                    *(stage_key(spec, stage) for stage in (FEATURES, MODEL, REGISTRY))
                ),
                description=f"Features -> train -> evaluation gate -> promotion for {spec.name}.",
            )
            for spec in specs
        ],
    )
