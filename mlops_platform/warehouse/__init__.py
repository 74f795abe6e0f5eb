"""The analytical warehouse: DuckDB file by default, PostgreSQL in production.

Both are Dagster resources with one interface (`Warehouse`), so every asset reads and writes
tables the same way whichever profile is active. dlt loads into the same place.
"""

from mlops_platform.warehouse.base import Warehouse
from mlops_platform.warehouse.duckdb import DuckDBWarehouse
from mlops_platform.warehouse.postgres import PostgresWarehouse

__all__ = ["DuckDBWarehouse", "PostgresWarehouse", "Warehouse"]
