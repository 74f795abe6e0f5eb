"""The analytical warehouse: DuckDB file by default, PostgreSQL in production.

One interface (`WarehouseStore`, plain Python) with two implementations (`DuckDBStore`,
`PostgresStore`), so every asset reads and writes tables the same way whichever profile is
active; dlt loads into the same place. Their Dagster resources (`Warehouse`, `DuckDBWarehouse`,
`PostgresWarehouse`, in resources.py) are loaded on first use, so a process that only needs the
stores (the serving API) never imports Dagster.
"""

from mlops_platform.warehouse.base import WarehouseStore
from mlops_platform.warehouse.duckdb import DuckDBStore
from mlops_platform.warehouse.postgres import PostgresStore

_RESOURCES = ("DuckDBWarehouse", "PostgresWarehouse", "Warehouse")

__all__ = ["DuckDBStore", "PostgresStore", "WarehouseStore", *_RESOURCES]


def __getattr__(name: str):
    if name in _RESOURCES:
        from mlops_platform.warehouse import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
