"""The code location: assembles every domain's definitions and holds the only global policy.

Each domain module contributes whatever it defines (assets, asset specs, checks, jobs, schedules,
sensors), and each enabled model spec its pipeline; nothing is listed by hand here. Resources
come from the active profile.
"""

import warnings

import dagster as dg

from mlops_platform import model_pipeline
from mlops_platform.alerting import sensors as alerting_sensors
from mlops_platform.domains import enabled_domains
from mlops_platform.ingestion import jobs as ingestion_jobs
from mlops_platform.ingestion.assets import ingestion_definitions
from mlops_platform.profiles import executor_for, resources_for
from mlops_platform.registry import jobs as registry_jobs
from mlops_platform.retention import jobs as retention_jobs

DOMAIN_MODULES = [
    ingestion_jobs,
    registry_jobs,
    alerting_sensors,
    retention_jobs,
]


def _domain_definitions() -> dg.Definitions:
    with warnings.catch_warnings():
        # `load_definitions_from_modules` is marked preview in Dagster 1.13; it is what
        # collects asset specs and jobs from modules without listing them by hand.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.load_definitions_from_modules(DOMAIN_MODULES)


# The only module-level Definitions: Dagster refuses a module that holds more than one.
defs = dg.Definitions.merge(
    _domain_definitions(),
    # Each enabled domain's sources, landed tables and contract-checked raw tables.
    *(ingestion_definitions(domain) for domain in enabled_domains()),
    model_pipeline.model_pipelines(),
    dg.Definitions(resources=resources_for(), executor=executor_for()),
)
