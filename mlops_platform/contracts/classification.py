"""Which columns of the flights domain's raw tables say something about a person: the domain's
column classification, declared as data beside its contracts.

Every column of every raw table is declared (a test compares this with the loaded tables), so a
column that appears at the source has to be classified before anyone can claim it is harmless.
What the platform does with the classes (masking, the spec check, hashing in the prediction
log) is generic: `mlops_platform/privacy.py`.
"""

from __future__ import annotations

from mlops_platform.privacy import Classified, DataClass, classes_of

_TAIL = Classified(
    DataClass.QUASI_IDENTIFIER,
    "an aircraft registration: the public FAA register names its owner, which for a private "
    "or leased aircraft is a person",
)


def _none(reason: str, *columns: str) -> dict[str, Classified]:
    return {column: Classified(DataClass.NONE, reason) for column in columns}


_SCHEDULE = "schedule and outcome of a commercial flight, published by the airline"
_WEATHER = "an airport's hourly weather observation"

CLASSIFICATION: dict[str, dict[str, Classified]] = {
    "flights": {
        "tailnum": _TAIL,
        **_none(
            _SCHEDULE,
            "year",
            "month",
            "day",
            "dep_time",
            "sched_dep_time",
            "dep_delay",
            "arr_time",
            "sched_arr_time",
            "arr_delay",
            "carrier",
            "origin",
            "dest",
            "air_time",
            "distance",
            "hour",
            "minute",
            "time_hour",
            "status",
            "updated_at",
        ),
        # A flight number names a scheduled airline service (published timetables), not a
        # person or an aircraft: with the date it is the record's key, and it is kept as such.
        **_none("an airline's published service number", "flight"),
        **_none("the source database's row number for a flight", "id"),
    },
    "planes": {
        "tailnum": _TAIL,
        **_none(
            "type data of an aircraft model (manufacturer's catalogue)",
            "year",
            "type",
            "manufacturer",
            "model",
            "engines",
            "seats",
            "speed",
            "engine",
            "updated_at",
        ),
    },
    "airlines": _none("a company's public code and name", "carrier", "name", "updated_at"),
    "airports": _none(
        "a public airport's code, name and position",
        "faa",
        "name",
        "lat",
        "lon",
        "alt",
        "tz",
        "dst",
        "tzone",
        "updated_at",
    ),
    "weather": _none(
        _WEATHER,
        "origin",
        "time_hour",
        "year",
        "month",
        "day",
        "hour",
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ),
}


def classified_columns(table: str | None = None) -> dict[str, DataClass]:
    """{column: class} of the classified columns of raw `table`, or of the whole domain (every
    raw table; a column classified in two tables takes the stricter class) when None.

    Columns of class `none` are left out. An undeclared table raises KeyError."""
    return classes_of(CLASSIFICATION, table)
