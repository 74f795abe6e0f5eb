"""Which part of a feature table a run has to rebuild (no Dagster).

An entity's features depend on its own row and on rows of the other raw inputs near its event
date (how near is declared per table: `feature_date`, `feature_days_before` and, for rows that
feed later days' features, `feature_days_after`, which needs no earlier rebuild). So when the
latest build saw raw data up to some dlt load ids, only the entities on or after the earliest
date touched by a newer load need rebuilding. An input with no `feature_date` (reference data),
a change of the feature definition (the spec's features and label, or the domain's
features.py), or a missing table mean a full rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from mlops_platform.domains import domain_for, features_module
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import WarehouseStore

#: dlt stamps every row with the id of the load that wrote it; ids increase over time.
LOAD_ID = "_dlt_load_id"


def definition_digest(spec: ModelSpec) -> str:
    """Changes when the spec's features or label change, or the domain's feature code (its
    `features.py`, edited while a team iterates on a feature): the table must then be rebuilt."""
    shape = {
        "features": spec.features.model_dump(),
        "target": spec.target.model_dump(),
        "code": code_digest(features_module(domain_for(spec))),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def code_digest(module) -> str:  # noqa: ANN001 - a module
    """The digest of a features module's file, read once per loaded module: a process keeps
    the code it imported, so an edit made after the import is seen only by a new process
    (each Dagster run's steps), which then also sees the new digest."""
    digest = getattr(module, "__mlops_code_digest__", None)
    if digest is None:
        digest = hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
        module.__mlops_code_digest__ = digest
    return digest


@dataclass
class Plan:
    """`since` None and `full` False: nothing changed. `full`: rebuild everything."""

    full: bool
    since: dt.date | None
    reason: str
    watermarks: dict[str, str] = field(default_factory=dict)


def latest_load_ids(warehouse: WarehouseStore, tables: list[str]) -> dict[str, str]:
    ids = {}
    for table in tables:
        found = warehouse.query(f"SELECT max({LOAD_ID}) AS id FROM raw.{table}")["id"].iloc[0]
        ids[table] = "" if found is None else str(found)
    return ids


def plan_build(
    warehouse: WarehouseStore, spec: ModelSpec, previous: dict | None, full_refresh: bool = False
) -> Plan:
    """`previous`: the metadata of the latest build (its watermarks and definition digest)."""
    domain = domain_for(spec)
    now = latest_load_ids(warehouse, domain.feature_inputs)
    if full_refresh:
        return Plan(True, None, "full refresh requested", now)
    if not warehouse.table_exists("features", spec.name) or not previous:
        return Plan(True, None, "no earlier build", now)
    if previous.get("definition") != definition_digest(spec):
        return Plan(True, None, "the spec's features or the domain's features.py changed", now)
    earliest = []
    for table in domain.feature_inputs:
        declared = domain.tables[table]
        seen = previous.get(f"{table}_load_id", "")
        if declared.feature_date is None:
            if now[table] != seen:
                return Plan(True, None, f"raw.{table} changed", now)
            continue
        found = warehouse.query(
            f"SELECT min({declared.feature_date.sql()}) AS d FROM raw.{table} "
            f"WHERE {LOAD_ID} > :seen",
            {"seen": seen},
        )["d"].iloc[0]
        if found is not None and found == found:
            found = found.date() if isinstance(found, dt.datetime) else found
            earliest.append(found - dt.timedelta(days=declared.feature_days_before))
    if not earliest:
        return Plan(False, None, "no new raw data since the last build", now)
    since = min(earliest)
    return Plan(False, since, f"raw data changed from {since} on", now)
