"""`raw.*` tables: each one's landed batches audited by its contract, and the passing rows
published (write-audit-publish, contracts/publish.py).

Every `raw/<table>` asset carries a blocking `contract` check: a batch with failing rows or a
failing table rule stops everything downstream for this run (the passing rows are published
and the failing ones quarantined either way, in one transaction). The raw tables of one declared
source are published by one step (`build_published_tables`), as one step lands them.
"""

import dagster as dg

from mlops_platform.asset_keys import RAW_LAYER, domain_attributes
from mlops_platform.clock import Clock
from mlops_platform.contracts.classification import classified_columns
from mlops_platform.contracts.rules import TableContract, contracts_of
from mlops_platform.domains import Domain
from mlops_platform.ingestion.sources import LANDING_DATASET
from mlops_platform.markdown import markdown_table
from mlops_platform.privacy import mask_observed, mask_records
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

SAMPLE_ROWS = 10
CHECK_NAME = "contract"


def failure_summary(table: str, rule_counts: dict[str, int], failures: list) -> str:
    """One line: which rules failed, how many rows, and where to look."""
    parts = [f"{rule}: {n} rows" for rule, n in sorted(rule_counts.items())]
    parts += [
        f"{o.expectation}({o.column}): {o.observed[:80]}" for o in failures if o.scope == "table"
    ]
    return (
        f"contract of raw.{table} failed: {'; '.join(parts) or 'see failures'}. Rows kept in "
        f"quarantine.{table}: `mlops quarantine list --table {table}`"
    )


def published_spec(domain: Domain, contract: TableContract) -> dg.AssetSpec:
    """`["raw", <table>]`, downstream of its landing table and of the raw tables its contract
    takes allowed values from. Skippable: a table whose referenced table failed its contract
    in the same step is not published (as a separate step, it would have been skipped)."""
    references = sorted({table for table, _ in contract.references.values()})
    return dg.AssetSpec(
        dg.AssetKey(["raw", contract.table]),
        deps=[dg.AssetKey([LANDING_DATASET, contract.table])]
        + [dg.AssetKey(["raw", t]) for t in references],
        **domain_attributes(domain, RAW_LAYER),
        kinds={"python"},
        description=domain.tables[contract.table].description
        + " Published: only rows that passed the contract.",
        skippable=True,
    )


def contract_check_spec(contract: TableContract) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=dg.AssetKey(["raw", contract.table]),
        blocking=True,
        description=(
            f"Great Expectations contract of raw.{contract.table}, run on the landed "
            "batches before they are published: columns present at the source, cell "
            "types, non-null and unique keys, value ranges, allowed categories, no time "
            "beyond the source's clock, no version older than the stored one; row count "
            "and freshness of the table. Failing rows go to quarantine."
        ),
    )


def in_reference_order(contracts: list[TableContract]) -> list[TableContract]:
    """`contracts` with each table after the tables (among them) it references."""
    by_table = {c.table: c for c in contracts}
    ordered: dict[str, TableContract] = {}

    def visit(contract: TableContract, path: tuple[str, ...]) -> None:
        if contract.table in ordered:
            return
        if contract.table in path:
            raise ValueError(f"contracts reference each other in a cycle: {path}")
        for table, _ in contract.references.values():
            if table in by_table:
                visit(by_table[table], (*path, contract.table))
        ordered[contract.table] = contract

    for contract in contracts:
        visit(contract, ())
    return list(ordered.values())


def build_published_tables(domain: Domain, source_name: str) -> dg.AssetsDefinition:
    """The `raw/<table>` assets of one declared source's tables, published in one step.

    Each table keeps its own asset, blocking `contract` check, quarantine, audit and lineage;
    one step (as one multi-asset lands the source) spares each table a step of its own (the
    step's events and start-up were a fifth of a day's publish, py-spy). A failing contract
    fails the step after every selected table is published or quarantined, so everything
    downstream stops, as it did table by table; a table referencing one that failed in this
    step is not published in it (its rows stay landed for the next run)."""
    source = domain.sources[source_name]
    contracts = in_reference_order(
        [c for t, c in contracts_of(domain).items() if t in domain.tables_of(source_name)]
    )

    @dg.multi_asset(
        name=f"{source_name}_published",
        specs=[published_spec(domain, c) for c in contracts],
        check_specs=[contract_check_spec(c) for c in contracts],
        can_subset=True,
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse", source.resource, "clock"},
        description=f"Audit the landed rows of {source.description.rstrip('.')} against each "
        "table's contract and publish the rows that pass.",
    )
    def published(context: dg.AssetExecutionContext):
        failed: set[str] = set()
        for contract in contracts:
            if dg.AssetKey(["raw", contract.table]) not in context.selected_asset_keys:
                continue
            stopped = sorted({t for t, _ in contract.references.values() if t in failed})
            if stopped:
                context.log.warning(
                    f"raw.{contract.table} not published in this run: the contract of "
                    f"raw.{', raw.'.join(stopped)} failed (its rows stay landed)"
                )
                failed.add(contract.table)
                continue
            result = publish_table(context, domain, contract, source.resource)
            if not all(check.passed for check in result.check_results or []):
                failed.add(contract.table)
            yield result

    return published


def publish_table(
    context: dg.AssetExecutionContext,
    domain: Domain,
    contract: TableContract,
    source_resource: str,
) -> dg.MaterializeResult:
    """Audit and publish one table's landed batches; its materialization and contract check."""
    from mlops_platform.contracts.publish import ROW_ID, audit_and_publish
    from mlops_platform.contracts.quarantine import QUARANTINE_SCHEMA
    from mlops_platform.contracts.validate import REASON_COLUMN

    key = dg.AssetKey(["raw", contract.table])
    warehouse: Warehouse = context.resources.warehouse
    source_keys = None
    # A publish never drops `raw.<table>`: once there, it is there after this one too (one
    # catalog look-up per table instead of two at every run). Its column types answer whether
    # it exists and are handed to the audit, which needs them (a look-up fewer per table).
    raw_types = warehouse.column_types("raw", contract.table)
    published_before = bool(raw_types)
    # Rows can be deleted at the source only once some are published: before that, every
    # key of the source table would be read for nothing (a year's first load: 7% of it).
    if contract.on_source_delete != "ignore" and published_before:
        source = getattr(context.resources, source_resource)
        source_keys = source.table_keys(contract.table, contract.key)
    clock: Clock = context.resources.clock
    audit, done = audit_and_publish(
        warehouse, contract, clock.now(), context.run.run_id, source_keys, raw_types
    )
    if not published_before and not warehouse.table_exists("raw", contract.table):
        # Nothing published yet (e.g. the feed has no hour so far): no data to hand on.
        missing = f"raw.{contract.table} has not been published yet"
        return _contract_result(key, {"rows_loaded": 0}, False, missing, {"error": missing})
    report = audit.report
    # Values of classified columns never leave as examples (the domain's classification).
    classified = classified_columns(contract.table, domain)
    failures = [
        {
            "scope": o.scope,
            "expectation": o.expectation,
            "column": o.column,
            "unexpected": o.unexpected_count,
            "observed": mask_observed(o.expectation, o.column, o.observed[:200], classified),
        }
        for o in report.failures
    ]
    sample = audit.bad.head(SAMPLE_ROWS)
    columns = [*contract.key, REASON_COLUMN]
    sample_rows = mask_records(
        sample[[c for c in columns if c in sample]].to_dict("records"), classified
    )
    # A failing row already pending in quarantine (re-read at the cursor, or a future row
    # read again) was reported by the run that quarantined it; only new ones fail again.
    table_failures = [o for o in report.failures if o.scope == "table"]
    flagged = done.deleted_at_source if contract.on_source_delete == "flag" else 0
    passed = not table_failures and done.quarantined == 0 and flagged == 0
    if flagged:
        audit.rule_counts["expect_row_present_at_source"] = flagged
    summary = "" if passed else failure_summary(contract.table, audit.rule_counts, report.failures)
    if summary:
        context.log.warning(summary)
    table_metadata = {
        "rows_loaded": done.published,
        "batches_audited": done.batches,
        "landed_rows": done.landed,
        "unchanged_rows": done.unchanged,
        "deleted_at_source": done.deleted_at_source,
        "cursor": str(done.cursor),
    }
    check_metadata = {
        "batch_rows": audit.landed_rows,
        "table_rows": report.table_rows,
        "expectations": len(report.outcomes),
        "failed_expectations": len(failures),
        "failed_rows_by_rule": dg.MetadataValue.json(audit.rule_counts),
        "quarantined_rows": int(audit.bad[ROW_ID].nunique()),
        "new_quarantine_entries": done.quarantined,
        "quarantine_table": f"{QUARANTINE_SCHEMA}.{contract.table}",
        "failures": dg.MetadataValue.md(markdown_table(failures)),
        "bad_rows_sample": dg.MetadataValue.md(markdown_table(sample_rows)),
    }
    return _contract_result(key, table_metadata, passed, summary or None, check_metadata)


def _contract_result(
    key: dg.AssetKey, metadata: dict, passed: bool, description: str | None, check: dict
) -> dg.MaterializeResult:
    """`key`'s materialization with the result of its blocking contract check."""
    return dg.MaterializeResult(
        asset_key=key,
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                asset_key=key,
                check_name=CHECK_NAME,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=description,
                metadata=check,
            )
        ],
    )


def published_tables(domain: Domain) -> list[dg.AssetsDefinition]:
    """The `raw/<table>` assets of every table the domain declares, one step per source."""
    return [build_published_tables(domain, name) for name in domain.sources]
