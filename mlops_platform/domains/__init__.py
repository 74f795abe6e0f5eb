"""Domains: what the platform knows about a team's data, declared rather than coded.

INTERFACE STUB (lead, session start): the names below are the contract the stages code against.
The domain helper replaces the hard-coded flights declaration with YAML declarations loaded from
each domain's folder; keep these names and meanings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Partitions:
    start: dt.date
    end: dt.date | None = None  # None: up to the clock ("today")
    timezone: str = "UTC"


@dataclass(frozen=True)
class Domain:
    name: str
    entity_key: tuple[str, ...]
    partitions: Partitions
    description: str = ""
    extra: dict = field(default_factory=dict)


_FLIGHTS = Domain(
    name="flights",
    entity_key=("year", "month", "day", "carrier", "flight", "origin"),
    partitions=Partitions(start=dt.date(2013, 1, 1), end=dt.date(2013, 12, 31),
                          timezone="America/New_York"),
)


def domain_for(spec) -> Domain:  # noqa: ANN001 - ModelSpec, imported lazily to avoid a cycle
    """The domain a model spec belongs to."""
    return _FLIGHTS
