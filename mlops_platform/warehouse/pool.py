"""The Dagster concurrency pool of every step that opens the warehouse.

DuckDB allows one process to hold a read-write connection to a file at a time, so every step
that reads or writes the warehouse is in this pool, and dagster.yaml limits pools to one step
at a time (raise it for PostgreSQL).
"""

WAREHOUSE_POOL = "warehouse"
