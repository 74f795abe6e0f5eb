"""Blocking contract checks on every `raw.*` table.

Each check validates the latest batch dlt loaded (its staging table, read before merge
de-duplication so duplicate keys are visible) and the whole raw table. Failing rows are moved to
quarantine; the check then fails with severity ERROR, which stops everything downstream.
"""

import dagster as dg

from mlops_platform.contracts.classification import classified_columns
from mlops_platform.contracts.rules import CONTRACTS, TableContract
from mlops_platform.ingestion.resources import FlightOpsDatabase
from mlops_platform.markdown import markdown_table
from mlops_platform.privacy import mask_observed, mask_records
from mlops_platform.warehouse import Warehouse
from mlops_platform.warehouse.base import quote
from mlops_platform.warehouse.pool import WAREHOUSE_POOL

STAGING_SCHEMA = "raw_staging"
SAMPLE_ROWS = 10


def read_batch(warehouse: Warehouse, table: str):
    import pandas as pd

    if not warehouse.table_exists(STAGING_SCHEMA, table):
        return pd.DataFrame()
    return warehouse.read_table(STAGING_SCHEMA, table)


def read_profile(warehouse: Warehouse, contract: TableContract):
    """Key and freshness columns of the whole raw table; other present columns as empty names."""
    present = warehouse.columns("raw", contract.table)
    wanted = list(
        dict.fromkeys([*contract.key, *([contract.freshness[0]] if contract.freshness else [])])
    )
    selected = [c for c in wanted if c in present]
    profile = warehouse.query(
        f"SELECT {', '.join(quote(c) for c in selected) or '1 AS _row'} "
        f"FROM raw.{quote(contract.table)}"
    )
    # Required columns are checked for presence only, so they are carried without their data.
    return profile.reindex(columns=[*selected, *(c for c in present if c not in selected)])


def reference_values(warehouse: Warehouse, contract: TableContract) -> dict[str, list]:
    values = {}
    for column, (table, ref_column) in contract.references.items():
        if not warehouse.table_exists("raw", table):
            raise RuntimeError(
                f"contract of raw.{contract.table} needs raw.{table} for allowed {column} values, "
                "and it has not been loaded"
            )
        found = warehouse.query(f"SELECT DISTINCT {quote(ref_column)} AS v FROM raw.{quote(table)}")
        values[column] = [v for v in found["v"] if v is not None]
    return values


def build_contract_check(contract: TableContract) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", contract.table]),
        name="contract",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=(
            f"Great Expectations contract of raw.{contract.table}: columns, non-null and unique "
            "keys, value ranges, allowed categories, row count, freshness against the replay "
            "clock. Offending rows go to quarantine."
        ),
    )
    def contract_check(
        context: dg.AssetCheckExecutionContext,
        warehouse: Warehouse,
        source_system: FlightOpsDatabase,
    ) -> dg.AssetCheckResult:
        from mlops_platform.contracts.quarantine import QUARANTINE_SCHEMA, quarantine_rows
        from mlops_platform.contracts.validate import REASON_COLUMN, validate_contract

        if not warehouse.table_exists("raw", contract.table):
            # Nothing has been loaded yet (e.g. the feed has published no hour so far): there is
            # no data to hand downstream, so the contract fails rather than passing vacuously.
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"error": f"raw.{contract.table} has not been loaded yet"},
            )
        batch = read_batch(warehouse, contract.table)
        report = validate_contract(
            contract,
            batch,
            read_profile(warehouse, contract),
            reference_values(warehouse, contract),
            now=source_system.clock().now,
        )
        quarantined = quarantine_rows(warehouse, contract, report.bad_rows, context.run.run_id)
        if not batch.empty:
            # The batch has been judged; a re-run of this check must not judge it again.
            warehouse.execute(f"DELETE FROM {STAGING_SCHEMA}.{quote(contract.table)}")

        # Values of classified columns never leave as examples (contracts/classification.py).
        classified = classified_columns(contract.table)
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
        sample = report.bad_rows.head(SAMPLE_ROWS)
        sample_cols = [*contract.key, REASON_COLUMN]
        sample_rows = mask_records(
            sample[[c for c in sample_cols if c in sample]].to_dict("records"), classified
        )
        if quarantined:
            context.log.warning(
                f"{quarantined} rows of raw.{contract.table} moved to "
                f"{QUARANTINE_SCHEMA}.{contract.table}"
            )
        return dg.AssetCheckResult(
            passed=report.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "batch_rows": report.batch_rows,
                "table_rows": report.table_rows,
                "expectations": len(report.outcomes),
                "failed_expectations": len(failures),
                "quarantined_rows": quarantined,
                "quarantine_table": f"{QUARANTINE_SCHEMA}.{contract.table}",
                "failures": dg.MetadataValue.md(markdown_table(failures)),
                "bad_rows_sample": dg.MetadataValue.md(markdown_table(sample_rows)),
            },
        )

    return contract_check


contract_checks = [build_contract_check(contract) for contract in CONTRACTS.values()]
