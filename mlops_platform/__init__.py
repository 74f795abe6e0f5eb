"""mlops_platform: the whole life of a production model as a Dagster project (see README).

Importing the package sets one process-wide default before scikit-learn loads its OpenMP
runtime (libgomp, in scikit-learn's Linux wheels): `GOMP_SPINCOUNT=1000`, unless the operator
set it or `OMP_WAIT_POLICY`. An idle OpenMP thread spins for a while before it sleeps
(300,000 rounds by default); on a machine whose cores are shared (a laptop, a CI runner, a
worker beside other steps) the spinning threads take the cores from the thread doing the work.
Measured here, a HistGradientBoosting fit of 300,000 rows (wall seconds):

| OpenMP setting          | idle | beside two busy processes | load 7 (other work) |
| ----------------------- | ---- | ------------------------- | ------------------- |
| default                 | 2.2  | 19.7                      | 69-72               |
| GOMP_SPINCOUNT=1000     | 2.8  | 5.9-6.4                   |                     |
| OMP_WAIT_POLICY=PASSIVE | 4.9  | 4.7                       | 10.8                |

A short spin keeps most of the idle speed and nearly all of the busy-machine one.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
