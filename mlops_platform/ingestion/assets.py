"""`landing.*` tables: dlt lands each batch of a domain's declared sources (SQL databases and
HTTP feeds), one multi-asset per source.

Nothing here writes `raw`: the contract assets (contracts/checks.py) audit the landed batches
and publish the rows that pass."""

import warnings

import dagster as dg

from mlops_platform.asset_keys import DOMAIN_TAG, LAYER_TAG, RAW_LAYER, domain_attributes
from mlops_platform.domains import Domain
from mlops_platform.domains.schema import RestSource, SqlSource
from mlops_platform.ingestion.cursors import published_in_window, read_cursors
from mlops_platform.ingestion.sources import (
    LANDING_DATASET,
    leaves_out_published,
    rest_source,
    sql_source,
)
from mlops_platform.settings import active_profile
from mlops_platform.warehouse.pool import WAREHOUSE_POOL


def ingestion_selection(domain: Domain | None = None) -> dg.AssetSelection:
    """The landed and published tables of `domain` (what its daily cycle ingests), or of every
    domain."""
    tables = dg.AssetSelection.tag(LAYER_TAG, LANDING_DATASET) | dg.AssetSelection.tag(
        LAYER_TAG, RAW_LAYER
    )
    return tables if domain is None else tables & dg.AssetSelection.tag(DOMAIN_TAG, domain.name)


def source_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["source", name])


def source_specs(domain: Domain) -> list[dg.AssetSpec]:
    """The outside systems themselves, upstream of what is landed from them."""
    return [
        dg.AssetSpec(
            source_key(name),
            description=source.description,
            kinds=set(source.kinds),
            **domain_attributes(domain, "source"),
        )
        for name, source in domain.sources.items()
    ]


def required_columns(domain: Domain) -> dict[str, list[str]]:
    """Each table's required columns, as its domain declares them (a landed row missing one
    is marked for the contract to quarantine)."""
    return {table: list(t.contract.required_columns) for table, t in domain.tables.items()}


def landing_reads(domain: Domain, source_name: str) -> dict:
    """Each table of a source as `cursors.published_in_window` takes it: (key, the columns a
    re-read row must match in `raw` to be unchanged, cursor column, lookback). Those are the
    version and the columns checked against the clock: a row whose version is unchanged but
    whose clock-checked column moved (into the future) must land, for the audit to judge it."""
    reads = {}
    for table in domain.tables_of(source_name):
        declared = domain.tables[table]
        contract = declared.contract
        compared = [*dict.fromkeys([contract.version, *contract.not_after_clock])]
        reads[table] = (
            declared.primary_key,
            compared if contract.version else [],
            declared.cursor,
            declared.lookback,
        )
    return reads


def landing_spec(domain: Domain, source_name: str, table: str) -> dg.AssetSpec:
    """`["landing", <table>]`, in the domain's group, downstream of the system it comes from.

    Built from the declaration, not from a dlt source: dlt is imported by the runs that load
    (about 0.4 s of CPU), not by every process that loads the code location (each run's own
    process among them)."""
    declared = domain.tables[table]
    storage = "postgres" if active_profile() == "production" else "duckdb"
    return dg.AssetSpec(
        dg.AssetKey([LANDING_DATASET, table]),
        deps=[source_key(source_name)],
        description=f"Landed, not yet audited: {declared.description}",
        kinds={"dlt", storage},
        metadata={
            "dagster/table_name": f"{LANDING_DATASET}.{table}",
            "dagster/storage_kind": storage,
        },
        **domain_attributes(domain, LANDING_DATASET),
    )


def build_landing_assets(domain: Domain, name: str) -> dg.AssetsDefinition:
    """The dlt multi-asset landing one declared source's tables since each table's cursor."""
    source = domain.sources[name]
    specs = [landing_spec(domain, name, table) for table in domain.tables_of(name)]
    required = required_columns(domain)

    @dg.multi_asset(
        name=f"{name}_tables",
        specs=specs,
        can_subset=True,
        pool=WAREHOUSE_POOL,
        required_resource_keys={"dlt", "warehouse", source.resource},
        description=f"Land the rows of {source.description.rstrip('.')} changed since each "
        "table's cursor.",
    )
    def landing_tables(context: dg.AssetExecutionContext):
        with warnings.catch_warnings():
            # dagster-dlt clears a pipeline's pending packages (the pipeline does not restore
            # from its destination, warehouse/base.py) with a call dlt 1.30 deprecated.
            warnings.filterwarnings("ignore", message="drop_pending_packages is deprecated")
            yield from _land(context)

    def _land(context: dg.AssetExecutionContext):
        from mlops_platform.ingestion.translator import LandingTableTranslator

        dlt, warehouse = context.resources.dlt, context.resources.warehouse
        translator = LandingTableTranslator(lambda table: landing_spec(domain, name, table))
        system = getattr(context.resources, source.resource)
        cursors = read_cursors(warehouse)
        pipeline = warehouse.dlt_pipeline(name, LANDING_DATASET)
        if isinstance(source, SqlSource):
            # A fresh source every run: dlt cannot re-run one source object in a process.
            published = (
                published_in_window(warehouse, landing_reads(domain, name), cursors)
                if leaves_out_published(system.database_url)
                else {}
            )
            built = sql_source(
                domain, name, system.database_url, cursors, required, published=published
            )
            yield from dlt.run(
                context=context,
                dlt_source=built,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=translator,
                loader_file_format=warehouse.loader_file_format,
            )
            return
        assert isinstance(source, RestSource)
        with system.serve() as base_url:
            yield from dlt.run(
                context=context,
                dlt_source=rest_source(domain, name, base_url, cursors, required),
                dlt_pipeline=pipeline,
                dagster_dlt_translator=translator,
                loader_file_format=warehouse.loader_file_format,
            )

    return landing_tables


def landing_assets(domain: Domain) -> list[dg.AssetsDefinition]:
    return [build_landing_assets(domain, name) for name in domain.sources]
