"""A domain's daily partitions as Dagster sees them (the only Dagster import of `domains`)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mlops_platform.domains.schema import Domain, Partitions


def daily_partitions(partitions: Partitions) -> dg.DailyPartitionsDefinition:
    """Days from the declared start through the declared end (inclusive), or, with no end,
    through the last complete day of the wall clock."""
    end = partitions.end + dt.timedelta(days=1) if partitions.end is not None else None
    return dg.DailyPartitionsDefinition(
        start_date=partitions.start.isoformat(),
        end_date=end.isoformat() if end else None,
        timezone=partitions.timezone,
    )


def partitions_def(domain: Domain) -> dg.DailyPartitionsDefinition:
    """The domain's daily partitions (Dagster), from its declared range and timezone."""
    return daily_partitions(domain.partitions)
