"""The audit journal: a per-model lock and a local write-ahead spool of audit rows (no Dagster).

A change is journalled (fsync'd, state `intent`) before its alias moves, confirmed (`moved`)
after, and written to the warehouse by `audit.flush`; see `audit.py` for the whole protocol.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from mlops_platform.settings import data_dir

log = logging.getLogger("mlops.registry.audit")


# -- lock ------------------------------------------------------------------------------------
_held = threading.local()


@contextlib.contextmanager
def governance_lock(model: str, warehouse=None) -> Iterator[None]:
    """Exclusive per model across threads and processes of this host (re-entrant per thread);
    with a PostgreSQL warehouse also across hosts (an advisory lock on that server)."""
    depth = getattr(_held, model, 0)
    if depth:
        setattr(_held, model, depth + 1)
        try:
            yield
        finally:
            setattr(_held, model, depth)
        return
    folder = data_dir() / "registry_locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(model.encode()).hexdigest()[:16]
    with open(folder / f"{name}.lock", "a+") as handle, _server_lock(model, warehouse):
        fcntl.flock(handle, fcntl.LOCK_EX)  # its own open file: threads exclude each other too
        setattr(_held, model, 1)
        try:
            yield
        finally:
            setattr(_held, model, 0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _server_lock(model: str, warehouse) -> Iterator[None]:
    from mlops_platform.warehouse import PostgresStore

    if not isinstance(warehouse, PostgresStore):
        yield
        return
    import sqlalchemy as sa

    key = int.from_bytes(
        hashlib.sha256(f"mlops-alias:{model}".encode()).digest()[:8], "big", signed=True
    )
    engine = sa.create_engine(warehouse.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


# -- spool -----------------------------------------------------------------------------------
def _spool_path(warehouse) -> Path:
    identity = str(getattr(warehouse, "database_path", None) or getattr(warehouse, "url", ""))
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return data_dir() / "audit_spool" / f"{key}.jsonl"


@contextlib.contextmanager
def spool_locked(warehouse) -> Iterator[Path]:
    path = _spool_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_spool(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_spool(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        handle.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def journal(warehouse, change: dict) -> None:
    """Durably note a change before it happens (state `intent`)."""
    with spool_locked(warehouse) as path:
        write_spool(path, [*read_spool(path), {**change, "state": "intent"}])


def withdraw(warehouse, change_id: str) -> None:
    """The change did not happen: drop its journal entry."""
    with spool_locked(warehouse) as path:
        write_spool(path, [r for r in read_spool(path) if r["change_id"] != change_id])


def confirm(warehouse, change_id: str) -> None:
    """The alias moved: the entry becomes a row to write."""
    with spool_locked(warehouse) as path:
        rows = read_spool(path)
        for row in rows:
            if row["change_id"] == change_id:
                row["state"] = "moved"
        write_spool(path, rows)


def resolve_intents(warehouse, registry, model: str) -> None:
    """Entries a crashed process left between journal and confirm (call with the model's
    lock held, so none is under way): the registry says whether the alias moved."""
    with spool_locked(warehouse) as path:
        rows = read_spool(path)
        kept = []
        for row in rows:
            if row["model"] == model and row.get("state") == "intent":
                if registry.alias_version(model, row["alias"]) != row["to_version"]:
                    log.warning(
                        "dropping the journal entry of a change that never happened: %s", row
                    )
                    continue
                row["state"] = "moved"
            kept.append(row)
        if kept != rows or any(r.get("state") == "moved" for r in kept):
            write_spool(path, kept)


def pending(warehouse) -> list[dict]:
    with spool_locked(warehouse) as path:
        return read_spool(path)
