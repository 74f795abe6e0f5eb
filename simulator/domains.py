"""What the replay needs to know about each simulated domain, in one small record per domain.

The replay (simulator/replay/) is one code path for every domain: it creates the domain's source
system, reads and moves its replay clock, warms the warehouse up, bootstraps a champion and then
drives the platform's own sensors one cycle period at a time. What differs between domains is
here: which source module keeps the clock, where the replay starts and ends by default, how far
each warm-up ingestion step goes, and how the report groups its rows (months of 2013 for
flights, years of 1978-1988 for rainfall). The period of one loop cycle is the domain's
partition cadence (`partitions.cadence` in its declaration: daily or monthly).
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from types import ModuleType

from mlops_platform.domains import Domain, domain_for, load_domain


@dataclass(frozen=True)
class SimulatedDomain:
    """One domain's replay: its source system module and the replay's defaults."""

    name: str
    #: The module with `create_source(url)`, `read_clock(url)` and `set_clock(url, now)`.
    source_module: str
    #: The domain's SQL source whose database holds the replay clock (a key of `sources:`).
    source: str
    #: The source system's name in printed lines.
    label: str
    #: Where the replay clock starts when the source is created.
    start: dt.date
    #: Days ingested before the bootstrap champion is trained (`simulator replay`).
    warmup_days: int
    #: Days each warm-up ingestion run covers.
    warmup_step: int
    #: Days ingested before the bootstrap by `simulator quickstart` (none: `warmup_days`).
    quickstart_warmup_days: int | None
    #: The last day `simulator replay` scores and monitors by default.
    through: dt.date
    #: The report's rows: "month" or "year".
    report_by: str
    #: Default file name of the saved report (`make year`, `make rain`).
    report_name: str

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.source_module)

    @property
    def domain(self) -> Domain:
        return load_domain(self.name)

    @property
    def cadence(self) -> str:
        """How far the clock moves per loop cycle: the domain's partition cadence."""
        return getattr(self.domain.partitions, "cadence", None) or "daily"

    @property
    def source_file(self) -> str:
        """The local SQLite file of the clock's source database, under the data dir."""
        return self.domain.sources[self.source].default_file

    def source_url(self) -> str:
        """The clock's source database: its `url_env` variable if set, else the local file."""
        import os

        from mlops_platform.ingestion.resources import SourceDatabase

        source = self.domain.sources[self.source]
        local = SourceDatabase(default_file=source.default_file)
        return os.environ.get(source.url_env) or local.database_url

    @property
    def resource(self) -> str:
        """The Dagster resource key of the clock's source database."""
        return self.domain.sources[self.source].resource

    # -- the source system and its clock --------------------------------------------------------
    def create_source(self, url: str):
        return self.module.create_source(url)

    def now(self, url: str) -> dt.datetime:
        return self.module.read_clock(url).now

    def set_clock(self, url: str, now: dt.datetime):
        return self.module.set_clock(url, now)

    def advance(self, url: str, days: float):
        return self.module.advance(url, days)

    def next_cycle(self, now: dt.datetime) -> dt.datetime:
        """The clock one cycle period after `now`: the next day, or the first of next month
        (at the same time of day), whichever the domain's cadence says."""
        if self.cadence == "monthly":
            year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
            return now.replace(year=year, month=month, day=1)
        return now + dt.timedelta(days=1)

    def warmup_end(self, days: int | None = None) -> dt.date:
        """The clock's day at the end of the warm-up; with a monthly cadence the first of a
        month, so every loop cycle closes a whole period."""
        end = self.start + dt.timedelta(days=self.warmup_days if days is None else days)
        return end.replace(day=1) if self.cadence == "monthly" else end


FLIGHTS = SimulatedDomain(
    name="flights",
    source_module="simulator.flights.replay",
    source="flight_ops",
    label="flight-ops",
    start=dt.date(2013, 1, 1),
    warmup_days=59,
    warmup_step=5,
    quickstart_warmup_days=45,
    through=dt.date(2013, 12, 31),
    report_by="month",
    report_name="year-2013",
)
RAINFALL = SimulatedDomain(
    name="rainfall",
    source_module="simulator.rainfall.replay",
    source="station_db",
    label="weather station",
    start=dt.date(1949, 1, 1),
    # To 1978-01-01 (row 10,592): the first champion sees the ~13 years before, as in the
    # data's published benchmark (a model of the first 5,000 days); the concept changes near
    # row 12,000 (late 1981), well inside the loop.
    warmup_days=10_592,
    warmup_step=2_000,
    quickstart_warmup_days=None,
    through=dt.date(1988, 12, 31),
    report_by="year",
    report_name="rain-1978-1988",
)
SIMULATED: dict[str, SimulatedDomain] = {d.name: d for d in (FLIGHTS, RAINFALL)}


def simulated(domain_name: str) -> SimulatedDomain:
    if domain_name not in SIMULATED:
        raise KeyError(
            f"the simulator has no source system for domain {domain_name!r} "
            f"(it replays {', '.join(SIMULATED)})"
        )
    return SIMULATED[domain_name]


def simulated_for(specs) -> SimulatedDomain:
    """The one simulated domain of `specs` (a replay drives one source system's clock)."""
    names = sorted({domain_for(spec).name for spec in specs})
    if len(names) != 1:
        raise ValueError(
            f"a replay drives one domain's clock; the specs {[s.name for s in specs]} belong "
            f"to {names}: enable one domain's specs (MLOPS_MODEL_SPECS)"
        )
    return simulated(names[0])
