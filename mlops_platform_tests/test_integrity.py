"""Integrity off the happy path: processes killed with SIGKILL at each point of
write-audit-publish, a lock held at publish, a feed that lies (future rows, a cell of the wrong
type, a renamed column, an `updated_at` that moves backwards). Each case ends with `raw` holding
exactly the audited rows: none lost, none duplicated."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys

import pytest

from mlops_platform.contracts.publish import (
    DELETED_RULE,
    DUPLICATE_RULE,
    FUTURE_RULE,
    MISSING_RULE,
    STALE_RULE,
    TYPE_RULE,
)
from mlops_platform.contracts.quarantine import COLUMNS, DELETED, pending_quarantine
from mlops_platform.ingestion.cursors import read_cursors
from mlops_platform.settings import PROJECT_ROOT
from mlops_platform_tests.helpers import (
    check_results,
    ingest,
    land,
    publish_table,
    source_execute,
    source_query,
)
from mlops_platform_tests.test_contracts import inject_bad_batch
from simulator.flights import replay

#: Runs land + audit + publish of flights in a fresh process that SIGKILLs itself at `point`.
KILL_AT = """
import os, signal, sys
import mlops_platform.contracts.audit as audit
import mlops_platform.contracts.publish as wap
import mlops_platform.contracts.warehouse_audit as in_warehouse
from mlops_platform.warehouse.resources import DuckDBWarehouse
from mlops_platform_tests.helpers import land, publish_table

point, path, pipelines, url = sys.argv[1:5]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
# The audit runs in the warehouse (SQL, then GE on the rows it judged) or in pandas (GE alone).
if point == "before_audit":
    wap.audit_landed = die
    in_warehouse.audit_in_warehouse = die
elif point == "during_audit":
    audit.validate_contract = die
    in_warehouse.validate_batch = die  # inside the publish transaction, verdicts written
elif point == "inside_publish":
    wap.cursors.store_cursor = die  # inside the transaction, after raw and quarantine writes
warehouse = DuckDBWarehouse(path=path, pipelines_dir=pipelines)
if point == "before_audit":
    land(warehouse, url)  # the dlt load to landing completes, then the process dies
publish_table(warehouse, url, "flights")
"""


def flight_counts(warehouse) -> tuple[int, int]:
    found = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT (year, month, day, carrier, flight, origin)) AS k "
        "FROM raw.flights"
    )
    return int(found["n"].iloc[0]), int(found["k"].iloc[0])


def source_flights(url: str, where: str = "1 = 1") -> int:
    return source_query(url, f"SELECT count(*) FROM flights WHERE {where}")[0][0]


def baseline(warehouse, source_url: str) -> None:
    replay.advance(source_url, 1)
    land(warehouse, source_url)
    publish_table(warehouse, source_url, "airlines")
    publish_table(warehouse, source_url, "flights")


def test_sigkill_before_during_and_inside_publish_leaves_raw_with_audited_rows_only(
    resources, source_url
):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    before = flight_counts(warehouse)
    assert before[0] == before[1] == source_flights(source_url)
    inject_bad_batch(source_url)
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))

    for point in ("before_audit", "during_audit", "inside_publish"):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                KILL_AT,
                point,
                warehouse.path,
                warehouse.pipelines_dir,
                source_url,
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
        # Nothing of the killed run reached raw or quarantine; its batch is still pending.
        assert flight_counts(warehouse) == before, point
        assert len(pending_quarantine(warehouse, "flights")) == 0, point
        landed = warehouse.query("SELECT count(*) AS n FROM landing.flights WHERE flight >= 9001")
        assert landed["n"].iloc[0] >= 6, point

    land(warehouse, source_url)  # the next run lands again, then audits every pending batch
    audit, done = publish_table(warehouse, source_url, "flights")
    expected = source_flights(source_url) - 5  # five bad rows (four keys) quarantined
    assert flight_counts(warehouse) == (expected, expected)
    kept = pending_quarantine(warehouse, "flights")
    assert sorted(kept["flight"]) == [9001, 9002, 9003, 9004, 9004]
    left = warehouse.query("SELECT _dlt_load_id, count(*) AS n FROM landing.flights GROUP BY 1")
    assert left.empty, (left, audit.load_ids)
    assert done.batches == 2 and audit.rule_counts
    # The quarantine table has its declared schema, whatever the batch held.
    assert list(warehouse.column_types("quarantine", "flights")) == list(COLUMNS)


def test_lock_held_at_publish_fails_clearly_and_the_next_run_publishes(resources, source_url):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    inject_bad_batch(source_url)
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))
    land(warehouse, source_url)
    before = flight_counts(warehouse)

    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
    hold += "sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, warehouse.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match="(?i)lock"):
            publish_table(warehouse, source_url, "flights")
    finally:
        holder.kill()
        holder.wait()
    assert flight_counts(warehouse) == before
    assert len(pending_quarantine(warehouse, "flights")) == 0

    publish_table(warehouse, source_url, "flights")
    expected = source_flights(source_url) - 5
    assert flight_counts(warehouse) == (expected, expected)
    assert len(pending_quarantine(warehouse, "flights")) == 5


def test_future_row_is_quarantined_never_moves_the_cursor_and_the_cli_rewinds_it(
    resources, source_url, capsys
):
    from mlops_platform.cli import main

    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    # A feed that lies: one flight stamped two months ahead of the source's clock.
    source_execute(
        source_url,
        "UPDATE flights SET updated_at = '2013-03-01 00:00:00.000000' WHERE id = "
        "(SELECT min(id) FROM flights WHERE status = 'landed')",
    )
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))
    land(warehouse, source_url)
    audit, _ = publish_table(warehouse, source_url, "flights")
    assert audit.rule_counts == {FUTURE_RULE: 1}
    cursor = read_cursors(warehouse)["flights"]
    assert cursor <= dt.datetime(2013, 1, 2, 6)

    # Real hours after it are not skipped: the next day's flights all arrive.
    replay.advance(source_url, 1)
    land(warehouse, source_url)
    publish_table(warehouse, source_url, "flights")
    expected = source_flights(source_url)
    # The future-dated flight keeps its earlier, good version in raw (quarantine never deletes).
    assert flight_counts(warehouse) == (expected, expected)
    assert len(pending_quarantine(warehouse, "flights")) == 1  # quarantined once, not per run

    main(["source", "cursor", "--table", "flights"])
    assert str(read_cursors(warehouse)["flights"])[:10] in capsys.readouterr().out
    main(["source", "cursor", "--table", "flights", "--rewind-to", "2013-01-01T00:00:00"])
    assert read_cursors(warehouse)["flights"] == dt.datetime(2013, 1, 1)
    land(warehouse, source_url)
    _, done = publish_table(warehouse, source_url, "flights")
    # Re-read, nothing duplicated: of the day re-read, only the future-dated flight (which raw
    # does not hold at its version) lands again, and it is already pending in quarantine.
    assert (done.landed, done.published, done.quarantined) == (1, 0, 0)
    assert flight_counts(warehouse) == (expected, expected)


def test_rows_written_later_in_the_cursors_instant_are_not_missed(resources, source_url):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    cursor = read_cursors(warehouse)["flights"]
    stamp = f"{cursor:%Y-%m-%d %H:%M:%S.%f}"
    published_at_cursor = source_flights(source_url, f"updated_at = '{stamp}'")
    assert published_at_cursor >= 1
    # Written after the publish, in the very instant of the cursor (a writer's clock
    # resolution, a transaction committing late): a new flight, and a second row for the key
    # of a flight published at that instant.
    columns = (
        "year, month, day, sched_dep_time, sched_arr_time, carrier, flight, tailnum, origin, "
        "dest, distance, hour, minute, time_hour, status, updated_at"
    )
    source_execute(
        source_url,
        f"INSERT INTO flights ({columns}) VALUES (2013, 1, 2, 900, 1200, 'UA', 9101, 'N1', "
        f"'EWR', 'ORD', 700, 9, 0, '2013-01-02 14:00:00.000000', 'scheduled', '{stamp}')",
    )
    source_execute(
        source_url,
        f"INSERT INTO flights ({columns}) SELECT {columns} FROM flights "
        f"WHERE updated_at = '{stamp}' LIMIT 1",
    )
    land(warehouse, source_url)
    audit, done = publish_table(warehouse, source_url, "flights")
    # The rows published at the cursor (and in the lookback before it) are read again but not
    # landed; the new flight is published, and the key now held twice is not hidden.
    assert done.landed == 3 and done.published == 1
    assert audit.rule_counts == {DUPLICATE_RULE: 2}
    found = warehouse.query("SELECT count(*) AS n FROM raw.flights WHERE flight = 9101")
    assert int(found["n"].iloc[0]) == 1
    expected = source_flights(source_url) - 1  # the second row of the key stays out of raw
    assert flight_counts(warehouse) == (expected, expected)


def test_a_table_with_nothing_new_lands_nothing_and_keeps_its_cursor(resources, source_url):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    published = read_cursors(warehouse)["airlines"]
    assert published is not None
    land(warehouse, source_url)  # every airline is at the cursor: read again, none new
    audit, done = publish_table(warehouse, source_url, "airlines")
    assert (done.batches, done.landed, done.published, done.unchanged) == (0, 0, 0, 0)
    assert audit.report.success
    assert done.cursor == published == read_cursors(warehouse)["airlines"]


def test_updated_at_moving_backwards_is_flagged_and_keeps_the_newer_row(resources, source_url):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    flight_id, stored = source_query(
        source_url, "SELECT id, updated_at FROM flights WHERE status = 'landed' LIMIT 1"
    )[0]
    older = dt.datetime.fromisoformat(str(stored)) - dt.timedelta(hours=1)
    source_execute(
        source_url,
        f"UPDATE flights SET arr_delay = 77, updated_at = '{older:%Y-%m-%d %H:%M:%S.%f}' "
        f"WHERE id = {flight_id}",
    )
    land(warehouse, source_url)
    audit, _ = publish_table(warehouse, source_url, "flights")
    assert audit.rule_counts == {STALE_RULE: 1}
    assert (
        warehouse.query("SELECT count(*) AS n FROM raw.flights WHERE arr_delay = 77")["n"].iloc[0]
        == 0
    )
    kept = pending_quarantine(warehouse, "flights")
    assert len(kept) == 1 and "stored" in kept["_quarantine_reason"].iloc[0]
    assert flight_counts(warehouse)[0] == source_flights(source_url)


def test_wrong_type_cell_quarantines_its_row_with_key_and_column_not_the_source(
    resources, source_url
):
    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    assert ingest(resources).success
    flight = source_query(
        source_url, "SELECT id, flight FROM flights WHERE status = 'landed' LIMIT 1"
    )[0]
    source_execute(
        source_url,
        "UPDATE flights SET dep_delay = '12 min', updated_at = '2013-01-02 00:00:00.000000' "
        f"WHERE id = {flight[0]}",
    )
    result = ingest(resources)
    checks = check_results(result)
    # The other tables (and the other flights) are unaffected.
    assert all(checks[t].passed for t in ("planes", "airlines", "airports", "weather"))
    assert not checks["flights"].passed
    assert f"{TYPE_RULE}: 1 rows" in checks["flights"].description
    assert "mlops quarantine list --table flights" in checks["flights"].description
    kept = pending_quarantine(warehouse, "flights")
    assert list(kept["flight"]) == [flight[1]]
    assert "dep_delay='12 min'" in kept["_quarantine_reason"].iloc[0]
    # Its earlier good version stays in raw; nothing lost, nothing duplicated.
    expected = source_flights(source_url)
    assert flight_counts(warehouse) == (expected, expected)


def test_renamed_required_column_fails_the_contract_by_name(resources, source_url):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))
    source_execute(source_url, "ALTER TABLE flights RENAME COLUMN dest TO destination")
    land(warehouse, source_url)
    audit, _ = publish_table(warehouse, source_url, "flights")
    failed = {(o.expectation, o.column) for o in audit.report.failures}
    assert (MISSING_RULE, "dest") in failed
    assert set(audit.rule_counts) == {MISSING_RULE}
    kept = pending_quarantine(warehouse, "flights")
    assert len(kept) > 0 and "expect_column_to_exist(dest)" in kept["_quarantine_reason"].iloc[0]
    # No row without its destination was published.
    assert (
        warehouse.query("SELECT count(*) AS n FROM raw.flights WHERE dest IS NULL")["n"].iloc[0]
        == 0
    )
    assert json.loads(kept["_row"].iloc[0])["destination"]


def test_rows_deleted_at_the_source_are_reflected_or_flagged_as_the_contract_declares(
    resources, source_url
):
    warehouse = resources["warehouse"]
    baseline(warehouse, source_url)
    flight_id, flight = source_query(
        source_url, "SELECT id, flight FROM flights WHERE status = 'landed' LIMIT 1"
    )[0]
    source_execute(source_url, f"DELETE FROM flights WHERE id = {flight_id}")
    land(warehouse, source_url)

    # airports: reflect (reference data) - removed from raw, kept in quarantine as `deleted`.
    publish_table(warehouse, source_url, "airports")  # first publish of airports
    source_execute(source_url, "DELETE FROM airports WHERE faa = 'ZWU'")
    _, airports = publish_table(warehouse, source_url, "airports")
    assert airports.deleted_at_source == 1
    left = set(warehouse.query("SELECT faa FROM raw.airports")["faa"])
    assert "ZWU" not in left and "JFK" in left
    log = warehouse.read_table("quarantine", "airports")
    assert list(log["_status"]) == [DELETED] and DELETED_RULE in log["_quarantine_reason"][0]

    # flights: flag - kept in raw, one pending entry naming the rule, flagged once.
    before = flight_counts(warehouse)
    _, flights = publish_table(warehouse, source_url, "flights")
    assert flights.deleted_at_source == 1
    assert flight_counts(warehouse) == before
    kept = pending_quarantine(warehouse, "flights")
    assert list(kept["flight"]) == [flight]
    assert DELETED_RULE in kept["_quarantine_reason"].iloc[0]
    land(warehouse, source_url)
    assert publish_table(warehouse, source_url, "flights")[1].deleted_at_source == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["source", "cursor", "--table", "flights", "--rewind-to", "notadate"],
        ["model", "sign", "--version", "abc", "--reason", "x"],
        ["model", "sign", "--version", "9" * 40, "--reason", "x"],
    ],
)
def test_cli_refuses_bad_values_as_usage_errors(argv, capsys):
    from mlops_platform.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2  # argparse's usage error, before anything is read or moved
    assert repr(argv[-3] if argv[0] == "model" else argv[-1]) in capsys.readouterr().err
