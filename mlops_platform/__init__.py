"""mlops_platform: the whole life of a production model as a Dagster project (see README).

Importing the package sets two process-wide defaults, each unless the operator set it.

`DAGSTER_EVENT_BATCH_SIZE=1000`: Dagster's own switch (off by default in open source; its
comment says batching is expected for its cloud deployments). The events Dagster marks as a
batch are then handed to the event log together: the materializations of a ranged step (a
backfill run of 28 daily partitions records 28, partitioned observations likewise) and the
planned events of a new run. PostgreSQL's event log stores a batch of materializations in one
statement (other batches, and SQLite's log, still one event at a time). Measured on
PostgreSQL at load 11: the step recording 28 materializations took 1.27 s one by one, 0.10 s
batched (the same 28 partitions materialized). On the production stack that step ends every
backfill (docs/capacity.md). A batch is written when its last event comes: a process that
dies inside a step's batch loses the batch's events, and the step is retried.

`GOMP_SPINCOUNT=1000` (also left out when `OMP_WAIT_POLICY` is set), before scikit-learn
loads its OpenMP runtime (libgomp, in scikit-learn's Linux wheels). An idle OpenMP thread
spins for a while before it sleeps (300,000 rounds by default); on a machine whose cores are
shared (a laptop, a CI runner, a worker beside other steps) the spinning threads take the
cores from the thread doing the work.
Measured here, a HistGradientBoosting fit of 300,000 rows (wall seconds):

| OpenMP setting          | idle | beside two busy processes | load 7 (other work) |
| ----------------------- | ---- | ------------------------- | ------------------- |
| default                 | 2.2  | 19.7                      | 69-72               |
| GOMP_SPINCOUNT=1000     | 2.8  | 5.9-6.4                   |                     |
| OMP_WAIT_POLICY=PASSIVE | 4.9  | 4.7                       | 10.8                |

A short spin keeps most of the idle speed and nearly all of the busy-machine one.
"""

import os

os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
