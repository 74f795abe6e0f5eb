"""Celery queues of the production profile and the settings executor and workers share.

Steps go to the queue named by their `dagster-celery/queue` tag; untagged steps (ingestion,
features, scoring, monitoring: they mostly move rows in and out of the warehouse) go to the
default `warehouse` queue, and CPU-bound steps (training) are tagged for the `cpu` queue, so a
long fit never holds up the daily cycle's data steps. deploy/celery.yaml repeats these settings
for the workers; a test keeps the two equal.
"""

#: The op tag dagster-celery routes on (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG).
QUEUE_TAG = "dagster-celery/queue"
WAREHOUSE_QUEUE = "warehouse"
CPU_QUEUE = "cpu"

#: Tags for a CPU-heavy step.
CPU_STEP = {QUEUE_TAG: CPU_QUEUE}

#: Celery settings (lowercase names) given to the executor and to every worker.
CELERY_SETTINGS = {
    "task_default_queue": WAREHOUSE_QUEUE,
    # A task is acknowledged only when done, and put back when its worker dies: a worker
    # killed mid-step loses nothing, the broker hands the step to another worker.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # One step at a time per worker process: a long step never hides a queued one.
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
