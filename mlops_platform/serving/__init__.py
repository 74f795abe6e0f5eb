"""Online serving: a FastAPI service that follows the registry's champion (separate process).

It reads the MLflow registry (never Dagster's internals), speaks the MLflow scoring protocol,
the Open Inference Protocol and a typed `/predict`, batches concurrent requests into one model
call, shadows the challenger, logs every prediction, and exposes Prometheus metrics.
"""
