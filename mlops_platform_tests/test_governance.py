"""Governance records, for real: validated reasons, alias + audit row together (a busy DuckDB
held by another process, a failing registry), serialised moves, tamper-evident and append-only
audit logs (DuckDB hash chain, PostgreSQL trigger)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from mlops_platform.model.version import GateSummary
from mlops_platform.registry.audit import (
    confirm,
    governance_lock,
    journal,
    new_change,
    pending,
    validate_reason,
    verify_chain,
)
from mlops_platform.registry.promotion import (
    PromotionRefused,
    audit_log,
    promote,
    record_change,
    rollback,
)
from mlops_platform.registry.signing import record_gate
from mlops_platform_tests.registry_helpers import NAME, clone_version


def gated_version(registry) -> str:
    """A new version signed by the pipeline as having passed its gate."""
    version = clone_version(registry)
    record_gate(registry, NAME, version, GateSummary(passed=True, challenger=version))
    return version


def aliases(registry) -> tuple:
    return tuple(
        registry.alias_version(NAME, a) for a in ("champion", "previous_champion", "challenger")
    )


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "required"),
        ("   \n ", "required"),
        (None, "required"),
        ("x" * 501, "at most 500"),
        ("ok\x00hidden", "control characters"),
        ("fine\x1b[31m", "control characters"),
    ],
)
def test_bad_reasons_are_refused(reason, message):
    with pytest.raises(PromotionRefused, match=message):
        validate_reason(reason)


def test_an_automatic_promotion_reason_always_fits_the_audit_log():
    """A retrain's trigger reason lists every drifted column: on rainfall 1982-83 it made the
    promotion reason 539 characters long, and every gate-passed challenger's promotion was
    refused for 18 months. The generated reason is cut to fit and points to the run's tag."""
    from mlops_platform.model import tags as t
    from mlops_platform.registry.assets import promotion_reason

    assert promotion_reason({}, "run-1") == "passed evaluation gate"
    short = promotion_reason({t.RUN_REASON: "drift share 0.38 > 0.3 (dew_point)"}, "run-1")
    assert short == "passed evaluation gate; retrained because drift share 0.38 > 0.3 (dew_point)"
    columns = ", ".join(f"column_{i}_change" for i in range(40))
    long = promotion_reason({t.RUN_REASON: f"drift share 0.5 > 0.3 ({columns})\x1b[0m"}, "r-9")
    assert validate_reason(long) == long and len(long) == 500
    assert long.startswith("passed evaluation gate; retrained because drift share 0.5 > 0.3")
    assert long.endswith(f"… (the trigger's reason: tag {t.RUN_REASON} of Dagster run r-9)")


def test_bad_reason_or_failed_alias_move_changes_nothing(signed_registry):
    from mlflow.exceptions import MlflowException

    registry, warehouse = signed_registry
    before, rows = aliases(registry), len(audit_log(warehouse, NAME))
    version = gated_version(registry)
    for move in (promote, rollback):
        with pytest.raises(PromotionRefused, match="at most 500"):
            args = (version,) if move is promote else ()
            move(registry, warehouse, NAME, *args, reason="x" * 600, actor="t", run_id="t")
    # The registry refuses the move (no such version): the journalled row is withdrawn.
    with pytest.raises(MlflowException):
        record_change(registry, warehouse, NAME, "champion", "1", "99", reason="r", actor="t",
                      run_id="t")  # fmt: skip
    assert aliases(registry) == before
    assert len(audit_log(warehouse, NAME)) == rows and pending(warehouse) == []
    assert verify_chain(warehouse, registry) == []


def test_a_crash_between_journal_and_move_is_resolved(signed_registry):
    """A process died after journalling: once before moving the alias, once after."""
    registry, warehouse = signed_registry
    ghost = new_change(NAME, "champion", "1", "42", "died before the move", "t", "t", None)
    journal(warehouse, ghost.row())
    registry.set_alias(NAME, "previous_champion", "1")
    real = new_change(NAME, "previous_champion", None, "1", "died after the move", "t", "t", None)
    journal(warehouse, real.row())
    assert len(audit_log(warehouse, NAME)) == 2  # intents are not rows (yet)
    promote(registry, warehouse, NAME, gated_version(registry), reason="r", actor="t", run_id="t")
    log = audit_log(warehouse, NAME)
    assert "died before the move" not in set(log["reason"])
    assert list(log["reason"]).count("died after the move") == 1
    assert pending(warehouse) == [] and verify_chain(warehouse, registry) == []


def hold_lock(warehouse) -> subprocess.Popen:
    """Another process opens the DuckDB file for writing (as a running step does) and keeps
    it until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('SELECT 1'); "
            "print('locked', flush=True); sys.stdin.read()",
            warehouse.database_path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_busy_warehouse_queues_audit_rows_and_never_loses_them(signed_registry, capsys):
    """A step in another process holds DuckDB's write lock: the CLI rollback still moves the
    alias, its rows wait in the journal, and land in order with the next audit write."""
    from mlops_platform.cli import main

    registry, warehouse = signed_registry
    version = gated_version(registry)
    changes = promote(registry, warehouse, NAME, version, reason="better", actor="t", run_id="t")
    # promote says what moved, typed: the old champion kept as previous, then the new one.
    assert [(c.alias, c.from_version, c.to_version, c.queued) for c in changes] == [
        ("previous_champion", None, "1", False),
        ("champion", "1", version, False),
    ]
    assert {c.actor for c in changes} == {"t"} and changes[1].reason == "better"
    holder = hold_lock(warehouse)
    try:
        with pytest.raises(Exception, match="lock"):
            warehouse.query("SELECT 1")  # really held
        main(["model", "rollback", "--reason", "errors in serving", "--actor", "cy"])
        assert "audit row queued" in capsys.readouterr().out
        assert aliases(registry)[:2] == ("1", None)
        queued = pending(warehouse)
        assert [(r["alias"], r["to_version"]) for r in queued] == [
            ("champion", "1"),
            ("previous_champion", None),
        ]
    finally:
        holder.communicate("", timeout=60)
    main(["model", "audit", "--verify"])
    assert "hash chain intact" in capsys.readouterr().out
    log = audit_log(warehouse, NAME)
    assert pending(warehouse) == []
    assert list(log["seq"]) == list(range(1, len(log) + 1))
    assert list(zip(log["alias"], log["to_version"], strict=True))[-4:] == [
        ("previous_champion", "1"),
        ("champion", version),
        ("champion", "1"),
        ("previous_champion", None),
    ]
    assert set(log["actor"].iloc[-2:]) == {"cy"}


def test_admin_rollback_works_while_another_process_holds_the_warehouse(signed_registry, tmp_path):
    import httpx

    from mlops_platform.http_server import BackgroundServer
    from mlops_platform.serving.app import create_app
    from mlops_platform.serving.settings import ServingSettings

    registry, warehouse = signed_registry
    version = gated_version(registry)
    promote(registry, warehouse, NAME, version, reason="better", actor="t", run_id="t")
    settings = ServingSettings(admin_token="tok", log_dir=str(tmp_path / "log"), retry_seconds=0.2)
    with BackgroundServer(create_app(settings, registry, warehouse)) as server:
        holder = hold_lock(warehouse)
        try:
            reply = httpx.post(
                f"{server.url}/admin/rollback",
                json={"reason": "errors in serving"},
                headers={"authorization": "Bearer tok"},
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["audit_queued"] is True and reply.json()["champion"] == "1"
            assert len(pending(warehouse)) == 2
        finally:
            holder.communicate("", timeout=60)
    log = audit_log(warehouse, NAME)
    assert list(log["reason"].iloc[-2:]) == ["rollback: errors in serving"] * 2
    assert pending(warehouse) == [] and verify_chain(warehouse, registry) == []


def test_promote_and_rollback_are_serialised(signed_registry):
    registry, warehouse = signed_registry
    second, third = gated_version(registry), gated_version(registry)
    promote(registry, warehouse, NAME, second, reason="r", actor="t", run_id="t")

    # While the model's lock is held elsewhere, a rollback waits and moves nothing.
    done = threading.Event()
    with governance_lock(NAME):
        waiting = threading.Thread(
            target=lambda: (
                rollback(registry, warehouse, NAME, reason="r", actor="t", run_id="t"),
                done.set(),
            )
        )
        waiting.start()
        assert not done.wait(1.0) and aliases(registry)[0] == second
    waiting.join(timeout=120)
    assert done.is_set() and aliases(registry)[0] == "1"

    # Two operations at once: each sees the other's result, never a half-made state.
    promote(registry, warehouse, NAME, second, reason="r", actor="t", run_id="t")
    start, errors = threading.Barrier(2), []

    def run(operation) -> None:
        start.wait()
        try:
            operation()
        except PromotionRefused as exc:  # e.g. nothing left to roll back to: clean refusal
            errors.append(exc)

    workers = [
        threading.Thread(
            target=run,
            args=(
                lambda: promote(
                    registry, warehouse, NAME, third, reason="r", actor="a", run_id="a"
                ),
            ),  # fmt: skip
        ),
        threading.Thread(
            target=run,
            args=(lambda: rollback(registry, warehouse, NAME, reason="r", actor="b", run_id="b"),),
        ),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert not errors
    log = audit_log(warehouse, NAME)
    for alias in ("champion", "previous_champion"):
        moves = log[log["alias"] == alias]
        # Every move starts where the one before it ended.
        assert list(moves["from_version"].iloc[1:].fillna("-")) == list(
            moves["to_version"].iloc[:-1].fillna("-")
        ), alias
        assert (moves["to_version"].iloc[-1] or None) == registry.alias_version(NAME, alias)
    assert verify_chain(warehouse, registry) == []


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        ("UPDATE audit.model_alias_changes SET reason = 'nothing to see' WHERE seq = 2", "altered"),
        ("UPDATE audit.model_alias_changes SET actor = 'someone else' WHERE seq = 4", "altered"),
        ("DELETE FROM audit.model_alias_changes WHERE seq = 2", "does not link"),
        ("DELETE FROM audit.model_alias_changes WHERE seq = 4", "removed from the end"),
        (
            "UPDATE audit.model_alias_changes SET seq = 5 - seq WHERE seq IN (2, 3)",
            "does not link",
        ),
    ],
)
def test_duckdb_audit_tampering_is_detected(signed_registry, tmp_path, capsys, tamper, found):
    from mlops_platform.cli import main

    registry, warehouse = signed_registry
    promote(registry, warehouse, NAME, gated_version(registry), reason="r", actor="t", run_id="t")
    assert len(audit_log(warehouse, NAME)) == 4
    main(["model", "audit", "--verify"])
    assert "intact" in capsys.readouterr().out
    warehouse.execute(tamper)  # directly, as anyone with the file could
    problems = verify_chain(warehouse, registry)
    assert any(found in p for p in problems), problems
    with pytest.raises(SystemExit) as exit_:
        main(["model", "audit", "--verify"])
    assert exit_.value.code == 1 and "TAMPERED" in capsys.readouterr().out


def test_postgres_audit_table_refuses_update_delete_truncate(data_dir, postgres_default_schemas):
    import sqlalchemy as sa

    from mlops_platform.registry.audit import flush
    from mlops_platform.warehouse.resources import PostgresWarehouse
    from mlops_platform_tests.test_production_profile import SERVER, _server_or_skip

    _server_or_skip()
    engine = sa.create_engine(SERVER)
    with engine.begin() as conn:
        conn.execute(sa.text('DROP SCHEMA IF EXISTS "audit" CASCADE'))
    warehouse = PostgresWarehouse(url=SERVER)
    for to_version in ("1", "2"):
        change = new_change(NAME, "champion", None, to_version, "r", "t", "t", None)
        journal(warehouse, change.row())
        confirm(warehouse, change.change_id)
        assert flush(warehouse) == 0
    assert verify_chain(warehouse) == []
    try:
        for statement in (
            "UPDATE audit.model_alias_changes SET reason = 'x'",
            "DELETE FROM audit.model_alias_changes WHERE seq = 1",
            "TRUNCATE audit.model_alias_changes",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with engine.begin() as conn:
                    conn.execute(sa.text(statement))
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT count(*) FROM audit.model_alias_changes")).scalar()
                == 2
            )
    finally:
        engine.dispose()


def test_postgres_lock_serialises_hosts(data_dir, tmp_path):
    """Another host (its own data dir, so its own file locks) holding the model's lock on the
    PostgreSQL server makes this one wait."""
    import os

    from mlops_platform.warehouse.resources import PostgresWarehouse
    from mlops_platform_tests.test_production_profile import SERVER, _server_or_skip

    _server_or_skip()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from mlops_platform.registry.audit import governance_lock\n"
            "from mlops_platform.warehouse.resources import PostgresWarehouse\n"
            f"with governance_lock({NAME!r}, PostgresWarehouse(url={SERVER!r})):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        env={**os.environ, "MLOPS_DATA_DIR": str(tmp_path / "other-host")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    acquired = threading.Event()

    def take() -> None:
        with governance_lock(NAME, PostgresWarehouse(url=SERVER)):
            acquired.set()

    try:
        assert other.stdout.readline().strip() == "held"
        waiting = threading.Thread(target=take)
        waiting.start()
        assert not acquired.wait(1.0)
    finally:
        other.communicate("", timeout=60)
    waiting.join(timeout=60)
    assert acquired.is_set()
