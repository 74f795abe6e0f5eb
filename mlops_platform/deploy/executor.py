"""The production executor: dagster-celery, with the run noticing a finished step sooner.

dagster-celery's run loop (`dagster_celery.core_execution_loop`) checks its steps' Celery results,
submits the steps that became ready, then sleeps `TICK_SECONDS`, one second. A graph whose steps
wait on each other (a backfill's `plan`, then its chunks, then `summary`) pays up to a second at
each level, in every run, whatever the number of workers: measured on the stack, this fixed part
is what keeps two workers from halving a backfill (docs/capacity.md). Checking a result is one
non-blocking read of the run's reply queue (`rpc://`), so the loop here sleeps `POLL_SECONDS`.

Everything else is dagster-celery's own executor: its configuration, task submission, retries
and revocation on termination.
"""

from __future__ import annotations

import dagster as dg

#: How long the run's loop sleeps between two looks at its steps' results.
POLL_SECONDS = 0.1


def _prompt_executor_class():
    from dagster_celery.executor import CeleryExecutor

    class PromptCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor, looking at its steps' results every `POLL_SECONDS`."""

        def execute(self, plan_context, execution_plan):
            from dagster_celery import core_execution_loop

            # The loop reads the module's TICK_SECONDS at each sleep; the run process runs
            # one run, so setting it here sets it for this run only.
            core_execution_loop.TICK_SECONDS = POLL_SECONDS
            return super().execute(plan_context, execution_plan)

    return PromptCeleryExecutor


def celery_executor_definition() -> dg.ExecutorDefinition:
    """An executor named `celery`, with dagster-celery's configuration schema and requirements."""
    from dagster._core.definitions.executor_definition import (
        multiple_process_executor_requirements,
    )
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CELERY_CONFIG

    @dg.executor(
        name="celery",
        config_schema=CELERY_CONFIG,
        requirements=multiple_process_executor_requirements(),
    )
    def prompt_celery_executor(init_context):
        config = init_context.executor_config
        return _prompt_executor_class()(
            broker=config.get("broker"),
            backend=config.get("backend"),
            config_source=config.get("config_source"),
            include=config.get("include"),
            retries=RetryMode.from_config(config["retries"]),
        )

    return prompt_celery_executor
