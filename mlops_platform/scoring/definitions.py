"""The scoring package's definitions: `scores/<spec>` (daily partitions) and `score_<spec>`."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.scoring.assets import DAILY, build_scores_asset
from mlops_platform.specs import ModelSpec


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    assets, jobs = [], []
    for spec in specs:
        scores = build_scores_asset(spec)
        assets.append(scores)
        jobs.append(
            dg.define_asset_job(
                f"score_{spec.name}",
                selection=dg.AssetSelection.assets(scores),
                partitions_def=DAILY,
                description=f"Score one day with the {spec.name} champion (daily partitions; "
                "backfill from the UI or `dagster job backfill`).",
            )
        )
    return dg.Definitions(assets=assets, jobs=jobs)
