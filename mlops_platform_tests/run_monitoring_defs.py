"""A code location for the run-monitoring test: one step in the `warehouse` pool that holds
its slot until released (a file appears) or 120 s pass."""

import os
import time
from pathlib import Path

import dagster as dg

from mlops_platform.warehouse.pool import WAREHOUSE_POOL


@dg.asset(pool=WAREHOUSE_POOL)
def pool_holder() -> None:
    """Stands in for an ingestion step: it holds the warehouse pool while it runs."""
    folder = Path(os.environ["MLOPS_DATA_DIR"])
    (folder / f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


defs = dg.Definitions(
    assets=[pool_holder],
    jobs=[
        dg.define_asset_job(
            "hold_warehouse", selection=[pool_holder], executor_def=dg.in_process_executor
        )
    ],
)
