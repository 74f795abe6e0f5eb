"""The warehouse as Dagster resources: the plain stores (base.py, duckdb.py, postgres.py) with
Dagster's resource lifecycle. Assets and ops annotate `warehouse: Warehouse`."""

from __future__ import annotations

import dagster as dg

from mlops_platform.warehouse.base import WarehouseStore
from mlops_platform.warehouse.duckdb import DuckDBStore
from mlops_platform.warehouse.postgres import PostgresStore


class Warehouse(dg.ConfigurableResource, WarehouseStore):
    """Tables in named schemas (`raw`, `quarantine`, ...), read and written as DataFrames."""


class DuckDBWarehouse(Warehouse, DuckDBStore):
    """Warehouse in a DuckDB file (default `<data dir>/warehouse.duckdb`)."""

    def setup_for_execution(self, context) -> None:
        self.anchor()

    def teardown_after_execution(self, context) -> None:
        self.release()


class PostgresWarehouse(Warehouse, PostgresStore):
    """Warehouse in PostgreSQL; `url` is a SQLAlchemy URL (postgresql://user@host:port/db)."""
