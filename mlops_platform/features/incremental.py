"""Which part of a feature table a run has to rebuild (no Dagster).

A flight's features depend on its own row, the weather at its origin up to 3 hours before it
departs, and its plane. So when the latest build saw raw data up to some dlt load ids, only the
flights on or after the earliest date touched by a newer load need rebuilding. The planes
table, a change of the feature definition, or a missing table mean a full rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from mlops_platform.features.build import FLIGHT_DATE_SQL
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import Warehouse

#: dlt stamps every row with the id of the load that wrote it; ids increase over time.
LOAD_ID = "_dlt_load_id"
#: Raw table -> (SQL date of a row, days before it that a change can affect). A weather hour is
#: in UTC, and New York flights of the previous local date can depart within 3 hours of it.
AFFECTS_FROM = {
    "flights": (FLIGHT_DATE_SQL, 0),
    "weather": ("CAST(time_hour AS DATE)", 1),
}


def definition_digest(spec: ModelSpec) -> str:
    """Changes when the spec's features or label change: the table must then be rebuilt."""
    shape = {"features": spec.features.model_dump(), "target": spec.target.model_dump()}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """`since` None and `full` False: nothing changed. `full`: rebuild everything."""

    full: bool
    since: dt.date | None
    reason: str
    watermarks: dict[str, str] = field(default_factory=dict)


def latest_load_ids(warehouse: Warehouse) -> dict[str, str]:
    ids = {}
    for table in ("flights", "weather", "planes"):
        found = warehouse.query(f"SELECT max({LOAD_ID}) AS id FROM raw.{table}")["id"].iloc[0]
        ids[table] = "" if found is None else str(found)
    return ids


def plan_build(
    warehouse: Warehouse, spec: ModelSpec, previous: dict | None, full_refresh: bool = False
) -> Plan:
    """`previous`: the metadata of the latest build (its watermarks and definition digest)."""
    now = latest_load_ids(warehouse)
    if full_refresh:
        return Plan(True, None, "full refresh requested", now)
    if not warehouse.table_exists("features", spec.name) or not previous:
        return Plan(True, None, "no earlier build", now)
    if previous.get("definition") != definition_digest(spec):
        return Plan(True, None, "the spec's features changed", now)
    if now["planes"] != previous.get("planes_load_id", ""):
        return Plan(True, None, "raw.planes changed", now)
    earliest = []
    for table, (affects, days_before) in AFFECTS_FROM.items():
        seen = previous.get(f"{table}_load_id", "")
        found = warehouse.query(
            f"SELECT min({affects}) AS d FROM raw.{table} WHERE {LOAD_ID} > :seen",
            {"seen": seen},
        )["d"].iloc[0]
        if found is not None and found == found:
            found = found.date() if isinstance(found, dt.datetime) else found
            earliest.append(found - dt.timedelta(days=days_before))
    if not earliest:
        return Plan(False, None, "no new raw data since the last build", now)
    since = min(earliest)
    return Plan(False, since, f"raw data changed from {since} on", now)
