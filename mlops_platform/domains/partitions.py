"""A domain's partitions as Dagster sees them (the only Dagster import of `domains`): daily or
monthly, per the declared cadence.

Where they end: the declared `end` (its period included), and the clock's last complete period.
With no `until`, that is Dagster's own time (the wall clock: in production the partitions grow
by one each period, no reload needed). With `until` (a replay clock read when the definitions
are built), they end at the last complete period before it; the earlier of the two wins.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mlops_platform.domains.periods import period_before, period_of
from mlops_platform.domains.schema import Domain, Partitions

PartitionsDefinition = dg.DailyPartitionsDefinition | dg.MonthlyPartitionsDefinition


def partitions_end(partitions: Partitions, until: dt.datetime | dt.date | None) -> dt.date | None:
    """The exclusive end of the partitions (the first day not in them), or None: up to
    Dagster's clock. `until` is the clock's time (its date decides)."""
    ends = []
    if partitions.end is not None:
        ends.append(period_of(partitions.end, partitions.cadence).end)
    if until is not None:
        day = until.date() if isinstance(until, dt.datetime) else until
        ends.append(period_before(day, partitions.cadence).end)
    if not ends:
        return None
    # Never before the start: an empty range reads as "no partitions yet", not an error.
    return max(min(ends), partitions.start)


def build_partitions(
    partitions: Partitions, until: dt.datetime | dt.date | None = None
) -> PartitionsDefinition:
    """The Dagster partitions of a declaration's `partitions` (see the module docstring)."""
    end = partitions_end(partitions, until)
    kwargs = {
        "start_date": partitions.start.isoformat(),
        "end_date": end.isoformat() if end else None,
        "timezone": partitions.timezone,
    }
    if partitions.cadence == "monthly":
        return dg.MonthlyPartitionsDefinition(**kwargs)
    return dg.DailyPartitionsDefinition(**kwargs)


def partitions_def(
    domain: Domain, until: dt.datetime | dt.date | None = None
) -> PartitionsDefinition:
    """The domain's partitions (Dagster), from its declared cadence, range and timezone."""
    return build_partitions(domain.partitions, until)


def cadence_of(partitions: dg.PartitionsDefinition | None) -> str:
    """`monthly` or `daily` for the partitions this module builds."""
    return "monthly" if isinstance(partitions, dg.MonthlyPartitionsDefinition) else "daily"
