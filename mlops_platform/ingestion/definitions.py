"""The ingestion package's definitions: each enabled domain's declared sources, the landing
tables dlt loads from them, and the `ingest` job (landing + the raw tables with their blocking
contracts, from contracts/definitions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from mlops_platform.domains import Domain, domain_for, enabled_domains
from mlops_platform.ingestion.assets import ingestion_selection, landing_assets, source_specs

if TYPE_CHECKING:
    from mlops_platform.specs import ModelSpec  # typing only: specs import contracts

ingest_job = dg.define_asset_job(
    "ingest",
    selection=ingestion_selection(),
    description="Load every raw table with dlt and run its data contract (blocking checks).",
)


def domains_of(specs: Sequence[ModelSpec]) -> list[Domain]:
    """The domains of `specs`, once each, in order (no specs: the enabled domains)."""
    found = {d.name: d for d in (domain_for(s) for s in specs)} if specs else {}
    return list(found.values()) or enabled_domains()


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    """Ingestion is shared by every spec of a domain: one set per domain."""
    domains = domains_of(specs)
    return dg.Definitions(
        assets=[a for d in domains for a in (*source_specs(d), *landing_assets(d))],
        jobs=[ingest_job],
    )
