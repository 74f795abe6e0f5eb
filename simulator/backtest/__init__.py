"""Which retraining policy pays: an offline backtest on a domain's real history.

Not production code: evaluation tooling beside the platform. The replay (`simulator/replay`)
runs the real Dagster loop and is far too slow to run six policies, so this walks the period
step by step in memory, reusing the platform's own functions: the domain's feature functions
(`features/build.py`), the time split and training (`model/split.py`, `training/train.py`), the
gate (`evaluation/gate.py`), the drift reference and calibration (`monitoring/reference.py`,
`monitoring/drift.py`, `monitoring/calibration.py`), the significance rule
(`monitoring/significance.py`) and the retrain decision (`monitoring/triggers.py`).

    simulator backtest --spec flight_delay | rain      (make backtest: both)
"""

#: Written last into `<reports>/<spec>/` by a backtest that finished: the table and target lines
#: it printed (`simulator replay --backtest` prints and links them after its own report).
SUMMARY_FILE = "backtest-summary.txt"
