"""The code location: assembles every domain's definitions and holds the only global policy."""

from __future__ import annotations

import dagster as dg

from mlops_platform.contracts import checks as contract_checks
from mlops_platform.ingestion import assets as ingestion_assets
from mlops_platform.ingestion import jobs as ingestion_jobs
from mlops_platform.profiles import resources_for

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion_assets]),
    asset_checks=dg.load_asset_checks_from_modules([contract_checks]),
    jobs=[ingestion_jobs.ingest_job, ingestion_jobs.advance_clock],
    resources=resources_for(),
)
