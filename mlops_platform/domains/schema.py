"""The schema of a domain declaration (`domains/<domain>/domain.yaml`), strict: an unknown or
misspelt field is an error, and the loader names the file and the field.

A declaration holds everything the platform core needs to know about a team's data: the entity
and its key, when an event happens, the raw tables and how dlt ingests them, their contracts and
column classification, the label and when it arrives, the feedback serving accepts, the
partition range, the columns that leak the outcome, and the prose the UI and model cards show.
No Dagster, no pandas: serving and the spec loader read it too.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from mlops_platform.domains.periods import Cadence

NAME = r"^[a-z][a-z0-9_]*$"
#: a Dagster asset owner: `team:<name>` or an email address
OWNER = r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$"
#: the most days a table's rows may reach across in the feature table, each way (ten years):
#: a build's date arithmetic stays within the calendar, and a typo fails at load
MAX_REACH_DAYS = 3660
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(value: object) -> object:
    """`90s`, `30m`, `3h`, `2d`, `1w` (or a number of seconds) as a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"{value!r} is not a duration like 90s, 30m, 3h, 2d or 1w")
        return dt.timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partitions(_Strict):
    """The partitions of scores and monitoring, one per period of the `cadence` (a day or a
    calendar month): `start` from the data, `end` declared or, when absent, up to the clock's
    last complete period."""

    cadence: Cadence = Field(
        default="daily", description="one partition (and one daily-cycle run) per day or month"
    )
    start: dt.date
    end: dt.date | None = Field(default=None, description="last day; none: up to the clock")
    timezone: str = Field(default="UTC", description="where a day begins and ends")

    @model_validator(mode="after")
    def _ordered(self) -> Partitions:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if self.end is not None and self.end < self.start:
            raise ValueError(f"partitions.end {self.end} is before partitions.start {self.start}")
        if self.cadence == "monthly" and self.start.day != 1:
            raise ValueError(
                f"partitions.start {self.start}: a monthly cadence starts on a month's first day"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"partitions.timezone {self.timezone!r} is not an IANA time zone"
            ) from exc
        return self


class EventDate(_Strict):
    """The day an entity's event belongs to (its partition), in the domain's timezone: either
    one date/time column, or three integer columns (year, month, day) that spell it."""

    column: str | None = None
    parts: tuple[str, str, str] | None = Field(default=None, description="year, month, day")

    @model_validator(mode="after")
    def _one(self) -> EventDate:
        if (self.column is None) == (self.parts is None):
            raise ValueError("event.date needs exactly one of `column` or `parts`")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.column] if self.column else list(self.parts or ())

    def sql(self) -> str:
        """The event date as SQL (DuckDB and PostgreSQL agree on this)."""
        if self.column:
            return f'CAST("{self.column}" AS DATE)'
        year, month, day = (f'CAST("{c}" AS INTEGER)' for c in self.parts or ())
        return f"make_date({year}, {month}, {day})"


class EventAt(_Strict):
    """The prediction point as a UTC timestamp: a timestamp column, plus an optional column of
    minutes added to it (a schedule kept as an hour and a minute)."""

    column: str
    plus_minutes: str | None = None

    @property
    def columns(self) -> list[str]:
        return [self.column, *([self.plus_minutes] if self.plus_minutes else [])]


class Event(_Strict):
    table: str = Field(description="the raw table with one row per entity")
    date: EventDate
    at: EventAt


class Label(_Strict):
    table: str = Field(description="the raw table the outcome is written to")
    column: str = Field(description="the outcome column (a spec's target reads it)")
    arrives: str = Field(min_length=10, description="when the outcome is known, in words")
    lag_days: int = Field(
        default=0,
        ge=0,
        description="days from an event's day until its label is known when that day is "
        "monitored (the next morning): 0 when it arrives the same day (known by nightfall), 1 "
        "when it arrives the next day (a next-morning report). Monitoring of day D judges "
        "labels up to D - lag_days; a model trained then learnt up to D - lag_days - "
        "holdout_days - 1",
    )


class Feedback(_Strict):
    """What serving's /feedback accepts: a row key of the label table and the label."""

    key: list[str] | None = Field(default=None, description="default: the label table's key")
    #: key columns that together spell a calendar day (checked to be real and not in the future)
    date_parts: tuple[str, str, str] | None = None


class SqlSource(_Strict):
    kind: Literal["sql"]
    description: str
    resource: str = Field(pattern=NAME, description="Dagster resource key of the connection")
    url_env: str = Field(description="environment variable with its URL in production")
    default_file: str = Field(description="local SQLite file under the data dir (no URL set)")
    kinds: list[str] = Field(default_factory=lambda: ["sqlite", "postgres"])


class RestEndpoint(_Strict):
    path: str
    data_selector: str = Field(description="where the rows are in a page")
    cursor_path: str = Field(description="where a page names the next one")
    cursor_param: str = Field(description="query parameter carrying it back")
    since_param: str = Field(description="query parameter of the incremental start (inclusive)")
    start: dt.datetime = Field(description="the first `since` when nothing was loaded yet")
    page_size_param: str = "limit"
    page_size: int = Field(default=5000, ge=1)


class RestSource(_Strict):
    kind: Literal["rest"]
    description: str
    resource: str = Field(pattern=NAME, description="Dagster resource key of the feed")
    url_env: str = Field(description="environment variable with its base URL in production")
    #: "module:attribute" of a context manager class started on loopback when no URL is set
    #: (a local stand-in for the feed), given the URL of `local_server_reads`
    local_server: str | None = None
    local_server_reads: str | None = Field(
        default=None, description="the SQL source the local server reads"
    )
    endpoints: dict[str, RestEndpoint] = Field(description="raw table -> its endpoint")
    kinds: list[str] = Field(default_factory=lambda: ["fastapi"])


Source = Annotated[SqlSource | RestSource, Field(discriminator="kind")]


class Freshness(_Strict):
    column: str
    max_age: Duration


class Contract(_Strict):
    """What a raw table promises (checked on every landed batch; see contracts/rules.py)."""

    required_columns: list[str]
    not_null: list[str] = Field(default_factory=list)
    #: {column: [low, high]}, either bound may be null
    ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(default_factory=dict)
    #: {column: "table.column"}: allowed values read from another raw table
    references: dict[str, str] = Field(default_factory=dict)
    min_rows: int = Field(default=1, ge=0)
    freshness: Freshness | None = None
    version: str | None = Field(default=None, description="orders a key's versions")
    not_after_clock: list[str] = Field(default_factory=list)
    future_tolerance: Duration = dt.timedelta(hours=1)
    on_source_delete: Literal["reflect", "flag", "ignore"] = "ignore"

    @model_validator(mode="after")
    def _references(self) -> Contract:
        for column, target in self.references.items():
            if target.count(".") != 1:
                raise ValueError(f"references.{column}: {target!r} is not `table.column`")
        return self


DataClassName = Literal["identifier", "quasi_identifier", "personal", "none"]


class ClassGroup(_Strict):
    """Columns of one class, with the reason (shown in reviews and the threat model)."""

    data_class: DataClassName = Field(alias="class")
    reason: str = Field(min_length=10)
    columns: list[str] = Field(min_length=1)


class Table(_Strict):
    source: str = Field(description="the declared source it comes from")
    description: str
    primary_key: list[str] = Field(min_length=1, description="the natural key (merge key)")
    cursor: str = Field(description="column the incremental read follows")
    lookback: Duration = Field(
        default=dt.timedelta(0), description="how far before the cursor a read starts"
    )
    contract: Contract
    classification: list[ClassGroup] = Field(description="every column, with its class")
    #: how far back a change to this table reaches in the feature table: the SQL day of a row
    #: and how many days before it; none: any change rebuilds every feature row
    feature_date: EventDate | None = None
    feature_days_before: int = Field(default=0, ge=0, le=MAX_REACH_DAYS)
    #: how many days after its own day a row still feeds feature rows (a feature computed over
    #: earlier days' rows, e.g. a share over the previous week): a build of some days reads
    #: this table from that many days before them; a change rebuilds from its own day on
    feature_days_after: int = Field(default=0, ge=0, le=MAX_REACH_DAYS)

    @property
    def columns(self) -> list[str]:
        return [c for group in self.classification for c in group.columns]


class Nouns(_Strict):
    singular: str
    plural: str


class Domain(_Strict):
    """One domain's declaration (the interface every stage codes against)."""

    name: str = Field(pattern=NAME)
    description: str
    entity: Nouns = Field(description="what one row of the feature table is, in prose")
    entity_key: tuple[str, ...] = Field(min_length=1)
    event: Event
    partitions: Partitions
    label: Label
    feedback: Feedback = Feedback()
    sources: dict[str, Source]
    tables: dict[str, Table]
    #: raw tables the feature table is built from (the event table first)
    feature_inputs: list[str]
    leakage_columns: list[str] = Field(
        default_factory=list, description="known only after the prediction point"
    )
    #: who answers for the domain's assets (Dagster owners: an email or `team:<name>`)
    owners: list[Annotated[str, Field(pattern=OWNER)]] = Field(
        default_factory=lambda: ["team:ml-platform"], min_length=1
    )
    #: the specs enabled when MLOPS_MODEL_SPECS is not set
    default_specs: list[str] = Field(default_factory=list)
    #: prose for model cards
    limitations: list[str] = Field(default_factory=list)
    extra: dict = Field(default_factory=dict, description="anything a domain's own code reads")

    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        """Where the declaration was read from (its specs and features.py live there)."""
        return self._folder

    @model_validator(mode="after")
    def _consistent(self) -> Domain:
        problems = []
        for name, table in self.tables.items():
            if table.source not in self.sources:
                problems.append(f"tables.{name}.source: {table.source!r} is not a declared source")
            declared = set(table.columns)
            duplicated = sorted(c for c in declared if table.columns.count(c) > 1)
            if duplicated:
                problems.append(f"tables.{name}.classification: {duplicated} classified twice")
            contract = table.contract
            named = {
                "primary_key": table.primary_key,
                "cursor": [table.cursor],
                "contract.required_columns": contract.required_columns,
                "contract.not_null": contract.not_null,
                "contract.ranges": list(contract.ranges),
                "contract.categories": list(contract.categories),
                "contract.references": list(contract.references),
                "contract.not_after_clock": contract.not_after_clock,
            }
            for field_name, columns in named.items():
                unknown = [c for c in columns if c not in declared]
                if unknown:
                    problems.append(
                        f"tables.{name}.{field_name}: {unknown} are not classified columns of "
                        f"{name} (tables.{name}.classification declares every column)"
                    )
            for column, target in contract.references.items():
                other, other_column = target.split(".")
                if other not in self.tables or other_column not in self.tables[other].columns:
                    problems.append(
                        f"tables.{name}.contract.references.{column}: {target} is not a "
                        "declared table column"
                    )
            if contract.on_source_delete != "ignore" and table.source in self.sources:
                if not isinstance(self.sources[table.source], SqlSource):
                    problems.append(
                        f"tables.{name}.contract.on_source_delete: only a sql source can list "
                        "its keys (use ignore)"
                    )
        for source_name, source in self.sources.items():
            if isinstance(source, RestSource):
                for table in source.endpoints:
                    if table not in self.tables or self.tables[table].source != source_name:
                        problems.append(
                            f"sources.{source_name}.endpoints.{table}: not a table of this source"
                        )
                reads = source.local_server_reads
                if reads is not None and not isinstance(self.sources.get(reads), SqlSource):
                    problems.append(
                        f"sources.{source_name}.local_server_reads: {reads!r} is not a declared "
                        "sql source"
                    )
        for where, table in [
            ("event.table", self.event.table),
            ("label.table", self.label.table),
            *[("feature_inputs", t) for t in self.feature_inputs],
        ]:
            if table not in self.tables:
                problems.append(f"{where}: {table!r} is not a declared table")
        if not problems:
            event = self.tables[self.event.table]
            needed = [*self.entity_key, *self.event.date.columns, *self.event.at.columns]
            unknown = [c for c in needed if c not in event.columns]
            if unknown:
                problems.append(
                    f"entity_key/event: {unknown} are not columns of {self.event.table}"
                )
            if self.label.column not in self.tables[self.label.table].columns:
                problems.append(f"label.column: {self.label.column!r} is not in {self.label.table}")
            if self.feature_inputs and self.feature_inputs[0] != self.event.table:
                problems.append(f"feature_inputs: the event table {self.event.table} comes first")
            key = self.feedback_key
            unknown = [c for c in key if c not in self.tables[self.label.table].columns]
            if unknown:
                problems.append(f"feedback.key: {unknown} are not columns of {self.label.table}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Derived views the core reads (plain data).

    @property
    def feedback_key(self) -> list[str]:
        return list(self.feedback.key or self.tables[self.label.table].primary_key)

    def source_of(self, table: str) -> SqlSource | RestSource:
        return self.sources[self.tables[table].source]

    def tables_of(self, source: str) -> list[str]:
        return [name for name, table in self.tables.items() if table.source == source]

    @property
    def raw_tables(self) -> list[str]:
        return list(self.tables)
