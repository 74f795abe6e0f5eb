"""The features package's definitions: `<spec>/features` and its `features_<spec>` job."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.features.assets import build_feature_asset
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    assets, jobs = [], []
    for spec in specs:
        feature = build_feature_asset(spec)
        assets.append(feature)
        jobs.append(
            dg.define_asset_job(
                f"features_{spec.name}",
                selection=dg.AssetSelection.assets(feature),
                description=f"Rebuild the {spec.name} feature table (new rows, late labels).",
            )
        )
    return dg.Definitions(assets=assets, jobs=jobs)
