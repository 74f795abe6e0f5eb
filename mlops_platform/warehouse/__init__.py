"""The analytical warehouse: DuckDB file by default, PostgreSQL in production.

One interface (`WarehouseStore`, plain Python) with two implementations (`DuckDBStore`,
`PostgresStore`), so every asset reads and writes tables the same way whichever profile is
active; dlt loads into the same place. Their Dagster resources (`Warehouse`, `DuckDBWarehouse`,
`PostgresWarehouse`) live in `warehouse/resources.py`, which only Dagster code imports: a
process that needs the stores alone (the serving API) never imports Dagster.
"""

from mlops_platform.warehouse.base import WarehouseStore
from mlops_platform.warehouse.duckdb import DuckDBStore
from mlops_platform.warehouse.postgres import PostgresStore

__all__ = ["DuckDBStore", "PostgresStore", "WarehouseStore"]
