"""How dagster-dlt names what a load wrote: each dlt resource (a declared table) is the landing
asset the code location declared for it (`ingestion/assets.landing_spec`).

Imported by the landing step when it runs, never when the code location loads: it imports dlt.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData


class LandingTableTranslator(DagsterDltTranslator):
    """A dlt resource's asset spec is `spec_of(<its table name>)`."""

    def __init__(self, spec_of: Callable[[str], dg.AssetSpec]) -> None:
        self.spec_of = spec_of

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        return self.spec_of(str(data.resource.table_name))
