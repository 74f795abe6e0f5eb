"""The audit in the warehouse (SQL, GE confirming) finds what the pandas audit (GE alone)
finds: the same fate for every landed row, the same reasons, counts, cursor and outcomes; and
when SQL and GE disagree the run falls back to GE alone instead of trusting SQL."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_platform.contracts import warehouse_audit
from mlops_platform.contracts.audit import ROW_ID, audit_landed
from mlops_platform.contracts.publish import reference_values
from mlops_platform.contracts.quarantine import pending_quarantine
from mlops_platform.contracts.rules import CONTRACTS
from mlops_platform.contracts.sql_rules import SqlRule
from mlops_platform.contracts.validate import REASON_COLUMN
from mlops_platform.ingestion.sources import LANDING_DATASET
from mlops_platform_tests.helpers import land, publish_table, source_query
from simulator.flights import replay
from simulator.flights.replay import read_clock


class _RolledBack(Exception):
    pass


def _sql_audit(warehouse, contract, references, now):
    """The warehouse audit's verdicts, its transaction rolled back (nothing published)."""
    types = warehouse.column_types(LANDING_DATASET, contract.table)
    raw_types = (
        warehouse.column_types("raw", contract.table)
        if warehouse.table_exists("raw", contract.table)
        else None
    )
    rules = warehouse_audit.plan_rules(contract, types, raw_types, references)
    assert rules is not None, "the flights contract has an exact SQL form"
    found = {}
    with pytest.raises(_RolledBack):
        with warehouse.transaction() as tx:
            found["audit"] = warehouse_audit.audit_in_warehouse(
                tx, contract, types, raw_types, rules, references, now
            )
            found["fates"] = tx.query(
                f"SELECT {ROW_ID}, {warehouse_audit.FATE} AS fate FROM {warehouse_audit.VERDICTS}"
            )
            raise _RolledBack
    return found["audit"], found["fates"]


def _outcomes(report) -> list[tuple]:
    return sorted(
        (o.scope, o.expectation, o.column, o.success, o.unexpected_count) for o in report.outcomes
    )


def assert_same_outcomes(warehouse, table: str, now) -> dict:
    contract = CONTRACTS[table]
    references = reference_values(warehouse, contract)
    by_pandas = audit_landed(warehouse, contract, references, now)
    by_sql, fates = _sql_audit(warehouse, contract, references, now)
    fate = dict(zip(fates[ROW_ID], fates["fate"], strict=True))
    assert {i for i, f in fate.items() if f == "publish"} == set(by_pandas.publish_ids)
    assert {i for i, f in fate.items() if f == "unchanged"} == set(by_pandas.unchanged_ids)
    reasons = dict(zip(by_pandas.bad[ROW_ID], by_pandas.bad[REASON_COLUMN], strict=True))
    assert dict(zip(by_sql.bad[ROW_ID], by_sql.bad[REASON_COLUMN], strict=True)) == reasons
    assert by_sql.bad.drop(columns=REASON_COLUMN).shape[1] == by_pandas.bad.shape[1] - 1
    assert by_sql.rule_counts == by_pandas.rule_counts
    assert by_sql.cursor == by_pandas.cursor
    assert by_sql.load_ids == by_pandas.load_ids
    assert by_sql.landed_rows == len(by_pandas.landed)
    assert _outcomes(by_sql.report) == _outcomes(by_pandas.report)
    assert by_sql.report.batch_rows == by_pandas.report.batch_rows
    assert by_sql.report.table_rows == by_pandas.report.table_rows
    return reasons


def _landed_with_every_kind_of_bad_row(warehouse, source_url) -> None:
    """A published first day, then the next day landed (new rows and rows re-read at the
    cursor) and spoiled in landing: each rule broken by some row."""
    replay.advance(source_url, 1)
    land(warehouse, source_url)
    for table in ("airlines", "airports", "planes", "flights"):
        publish_table(warehouse, source_url, table)
    replay.advance(source_url, 1)
    land(warehouse, source_url, whole_window=True)
    landing = f"{LANDING_DATASET}.flights"
    key = "year, month, day, carrier, flight, origin"
    warehouse.execute(
        f"CREATE TABLE spoiled AS SELECT {ROW_ID}, carrier, stored, row_number() OVER "
        f"(PARTITION BY carrier, stored ORDER BY {ROW_ID}) AS n FROM (SELECT l.{ROW_ID}, "
        "l.carrier, r.updated_at IS NOT NULL AS stored FROM "
        f"{landing} l LEFT JOIN raw.flights r USING ({key}) "
        "WHERE r.updated_at IS NULL OR r.updated_at = l.updated_at)"
    )

    def one(carrier: str, stored: bool = False) -> str:
        """A different landed row for each spoil (of a carrier; new, or in raw as landed)."""
        return (
            f"{ROW_ID} = (SELECT {ROW_ID} FROM spoiled WHERE carrier = '{carrier}' AND "
            f"stored = {stored} AND n = 1)"
        )

    spoil = [
        # a row re-read at the cursor (already in raw) whose version went back: stale
        f"UPDATE {landing} SET updated_at = updated_at - INTERVAL 1 HOUR, arr_delay = 77 "
        f"WHERE {one('UA', stored=True)}",
        # new rows, each failing one rule (or two)
        f"UPDATE {landing} SET distance = 99999 WHERE {one('9E')}",
        f"UPDATE {landing} SET origin = 'BOS', status = NULL WHERE {one('US')}",
        f"UPDATE {landing} SET carrier = 'ZZ' WHERE {one('AA')}",
        f"UPDATE {landing} SET updated_at = TIMESTAMPTZ '2013-05-01 00:00:00+00' WHERE {one('B6')}",
        f"UPDATE {landing} SET _type_errors = 'dep_time=''x''; ' WHERE {one('DL')}",
        f"UPDATE {landing} SET _source_missing = 'gate' WHERE {one('EV')}",
        f"UPDATE {landing} SET distance = 'NaN'::DOUBLE, arr_delay = 'NaN'::DOUBLE WHERE "
        f"{one('WN')}",
        # a row landed twice in one batch, and an older version of a key in an earlier batch
        f"INSERT INTO {landing} SELECT * REPLACE ({ROW_ID} || 'x' AS {ROW_ID}) FROM {landing} "
        f"WHERE {one('UA')}",
        f"INSERT INTO {landing} SELECT * REPLACE ({ROW_ID} || 'o' AS {ROW_ID}, "
        f"updated_at - INTERVAL 2 HOUR AS updated_at, '0.1' AS _dlt_load_id) FROM {landing} "
        f"WHERE {one('MQ')}",
    ]
    for statement in spoil:
        warehouse.execute(statement)


def test_sql_audit_judges_every_row_as_the_pandas_audit_does(resources, source_url):
    warehouse = resources["warehouse"]
    _landed_with_every_kind_of_bad_row(warehouse, source_url)
    reasons = assert_same_outcomes(warehouse, "flights", read_clock(source_url).now)
    found = " ".join(reasons.values())
    for rule in (
        "expect_version_not_older_than_stored",
        "expect_column_values_to_be_between(distance)",
        "expect_column_values_to_be_in_set(origin)",
        "expect_column_values_to_not_be_null(status)",
        "expect_column_values_to_be_in_set(carrier)",
        "expect_not_after_source_clock(updated_at)",
        "expect_column_values_to_be_of_type",
        "expect_column_to_exist(gate)",
        "expect_compound_columns_to_be_unique",
    ):
        assert rule in found, rule
    # Tables with nothing new, and a first load into an empty raw table, agree too.
    for table in ("airlines", "planes"):
        assert_same_outcomes(warehouse, table, read_clock(source_url).now)


def test_stored_versions_are_compared_per_landed_row_with_a_key_stored_twice_or_no_version(
    resources, source_url
):
    """The stale and already-stored flags (one join of the landed rows to raw, grouped per
    landed row) judge as the pandas audit does when raw holds a landed key twice, once at the
    landed version and once newer (stale, not unchanged), or holds it older than landed (a
    new version), and when a landed row has no version at all."""
    warehouse = resources["warehouse"]
    _landed_with_every_kind_of_bad_row(warehouse, source_url)
    landing = f"{LANDING_DATASET}.flights"
    key = "year, month, day, carrier, flight, origin"

    picked = {}
    for carrier in ("B6", "DL", "EV"):
        found = warehouse.query(
            f"SELECT l.{ROW_ID} AS id FROM {landing} l JOIN raw.flights r USING ({key}) "
            f"WHERE l.carrier = '{carrier}' AND l.updated_at = r.updated_at "
            f"ORDER BY l.{ROW_ID} LIMIT 1"
        )
        assert len(found) == 1, carrier
        picked[carrier] = found["id"].iloc[0]

    def stored_row(carrier: str) -> str:
        return f"({key}) = (SELECT ({key}) FROM {landing} WHERE {ROW_ID} = '{picked[carrier]}')"

    for statement in (
        # a stored key landed at its stored version, stored again one hour newer
        "INSERT INTO raw.flights SELECT * REPLACE (updated_at + INTERVAL 1 HOUR AS updated_at) "
        f"FROM raw.flights WHERE {stored_row('B6')}",
        # a stored key stored again one hour older (landed at its newest stored version)
        "INSERT INTO raw.flights SELECT * REPLACE (updated_at - INTERVAL 1 HOUR AS updated_at) "
        f"FROM raw.flights WHERE {stored_row('DL')}",
        # a stored key landed without a version
        f"UPDATE {landing} SET updated_at = NULL WHERE {ROW_ID} = '{picked['EV']}'",
    ):
        warehouse.execute(statement)
    contract = CONTRACTS["flights"]
    now = read_clock(source_url).now
    reasons = assert_same_outcomes(warehouse, "flights", now)
    _, fates = _sql_audit(warehouse, contract, reference_values(warehouse, contract), now)
    fate = dict(zip(fates[ROW_ID], fates["fate"], strict=True))
    assert "expect_version_not_older_than_stored" in reasons[picked["B6"]]
    assert fate[picked["DL"]] == "unchanged"
    assert fate[picked["EV"]] in ("publish", "bad")


def test_a_table_with_nothing_landed_is_judged_by_its_table_rules_and_nothing_is_written(
    resources, source_url
):
    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    land(warehouse, source_url)
    for table in ("airlines", "airports", "planes", "flights"):
        publish_table(warehouse, source_url, table)
    replay.advance(source_url, 1)
    land(warehouse, source_url)  # nothing new for planes
    # A key stored twice in raw: the whole-table unique-key rule fails with nothing landed.
    warehouse.execute("INSERT INTO raw.planes SELECT * FROM raw.planes LIMIT 1")
    before = {
        name: warehouse.query(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0]
        for name in ("raw.planes", "quarantine.planes", "ingest.batches", "ingest.cursors")
    }
    contract = CONTRACTS["planes"]
    now = read_clock(source_url).now
    by_pandas = audit_landed(warehouse, contract, reference_values(warehouse, contract), now)
    assert by_pandas.landed.empty
    audit, done = publish_table(warehouse, source_url, "planes")
    assert _outcomes(audit.report) == _outcomes(by_pandas.report)
    assert audit.report.table_rows == by_pandas.report.table_rows == before["raw.planes"]
    failed = [o.expectation for o in audit.report.outcomes if not o.success]
    assert failed == ["expect_column_values_to_be_unique"]
    assert (done.landed, done.published, done.batches, done.quarantined) == (0, 0, 0, 0)
    assert before == {
        name: warehouse.query(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0] for name in before
    }


def test_sql_audit_of_a_large_batch_samples_for_ge_and_still_finds_every_bad_row(
    resources, source_url, monkeypatch
):
    warehouse = resources["warehouse"]
    _landed_with_every_kind_of_bad_row(warehouse, source_url)
    monkeypatch.setattr(warehouse_audit, "SAMPLE_ROWS", 5)
    assert_same_outcomes(warehouse, "flights", read_clock(source_url).now)


def test_a_rule_sql_gets_wrong_is_caught_by_ge_and_the_batch_audited_by_ge_alone(
    resources, source_url, monkeypatch
):
    warehouse = resources["warehouse"]
    replay.set_clock(source_url, dt.datetime(2013, 1, 2))
    land(warehouse, source_url)
    publish_table(warehouse, source_url, "airlines")
    warehouse.execute(
        f"UPDATE {LANDING_DATASET}.flights SET distance = 99999 WHERE flight = "
        f"(SELECT min(flight) FROM {LANDING_DATASET}.flights)"
    )
    spoiled = int(
        warehouse.query(
            f"SELECT count(*) AS n FROM {LANDING_DATASET}.flights WHERE distance = 99999"
        )["n"].iloc[0]
    )
    plan = warehouse_audit.plan_rules

    def blind_to_distance(*args):
        # A translation bug: the distance range can never fail in SQL.
        return [
            SqlRule(r.expectation, r.column, "FALSE") if r.column == "distance" else r
            for r in plan(*args)
        ]

    monkeypatch.setattr(warehouse_audit, "plan_rules", blind_to_distance)
    audit, done = publish_table(warehouse, source_url, "flights")
    assert audit.verdicts is None  # audited again, by GE alone
    assert audit.rule_counts == {"expect_column_values_to_be_between": spoiled}
    assert done.quarantined == spoiled
    assert len(pending_quarantine(warehouse, "flights")) == spoiled
    published = warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0]
    flights = source_query(source_url, "SELECT count(*) FROM flights")[0][0]
    assert published == flights - spoiled
