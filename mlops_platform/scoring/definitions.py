"""The scoring package's definitions: `<spec>/scores` (the domain's partitions) and
`score_<spec>`."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from mlops_platform.scoring.assets import build_scores_asset, spec_partitions
from mlops_platform.specs import ModelSpec


def build_defs(
    specs: Sequence[ModelSpec], until: dt.datetime | dt.date | None = None
) -> dg.Definitions:
    assets, jobs = [], []
    for spec in specs:
        partitions = spec_partitions(spec, until)
        scores = build_scores_asset(spec, partitions)
        assets.append(scores)
        jobs.append(
            dg.define_asset_job(
                f"score_{spec.name}",
                selection=dg.AssetSelection.assets(scores),
                description=f"Score one partition with the {spec.name} champion (backfill "
                "from the UI or `dagster job backfill`).",
            )
        )
    return dg.Definitions(assets=assets, jobs=jobs)
