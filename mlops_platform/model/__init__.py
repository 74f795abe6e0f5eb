"""The model layer every stage imports downward: the feature table's columns (`columns.py`),
model input, predict, metrics, the time split, the version record and every tag key.

Training, evaluation, scoring, monitoring, serving and the replay import these modules; this
package imports no stage (a test checks it)."""
