"""The model layer every stage imports downward: input, predict, metrics, time split, version
record and run-tag keys (see columns.py for the feature table's contract)."""
