"""Data contracts: Great Expectations finds bad rows, blocks downstream, quarantines them."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from mlops_platform.contracts.quarantine import pending_quarantine
from mlops_platform.contracts.quarantine_replay import replay_quarantine
from mlops_platform.contracts.rules import CONTRACTS
from mlops_platform.contracts.validate import REASON_COLUMN, validate_contract
from mlops_platform_tests.helpers import check_results, ingest, source_execute
from simulator.flights import replay

FLIGHT = {
    "year": 2013,
    "month": 1,
    "day": 2,
    "carrier": "UA",
    "flight": 1,
    "origin": "EWR",
    "sched_dep_time": 900,
    "sched_arr_time": 1200,
    "tailnum": "N1",
    "dest": "IAH",
    "distance": 1400.0,
    "hour": 9,
    "minute": 0,
    "time_hour": pd.Timestamp("2013-01-02 14:00"),
    "status": "landed",
    "updated_at": pd.Timestamp("2013-01-02 18:00"),
    "arr_delay": 5.0,
    "dep_delay": 0.0,
    "air_time": 200.0,
}


def flights_frame(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([{**FLIGHT, "flight": i + 1, **change} for i, change in enumerate(changes)])


def validate(batch: pd.DataFrame, now=dt.datetime(2013, 1, 3)):
    profile = batch[[*CONTRACTS["flights"].key, "updated_at"]]
    return validate_contract(CONTRACTS["flights"], batch, profile, {"carrier": ["UA", "AA"]}, now)


def test_clean_batch_passes():
    report = validate(flights_frame({}, {}, {"carrier": "AA"}))
    assert report.success, report.failures
    assert report.bad_rows.empty


def test_each_kind_of_bad_row_is_found_with_its_reason():
    batch = flights_frame(
        {},  # good
        {"carrier": None},  # null in key
        {"arr_delay": 5000.0},  # impossible value
        {"carrier": "ZZ"},  # unknown carrier
        {"origin": "BOS"},  # origin outside the NYC airports
        {"flight": 77},  # duplicate key ...
        {"flight": 77},  # ... within the batch
    )
    report = validate(batch)
    assert not report.success
    reasons = dict(zip(report.bad_rows.index, report.bad_rows[REASON_COLUMN], strict=True))
    assert 0 not in reasons
    assert "expect_column_values_to_not_be_null(carrier)" in reasons[1]
    assert "expect_column_values_to_be_between(arr_delay)" in reasons[2]
    assert "expect_column_values_to_be_in_set(carrier)" in reasons[3]
    assert "expect_column_values_to_be_in_set(origin)" in reasons[4]
    assert "expect_compound_columns_to_be_unique" in reasons[5]
    assert "expect_compound_columns_to_be_unique" in reasons[6]
    assert len(reasons) == 6


def test_a_large_batch_split_by_column_finds_the_same_rows(monkeypatch):
    """From `SPLIT_ROWS` rows the pass/fail pass runs each column's rules on that column alone;
    the outcomes and the bad rows with their reasons are those of the single suite."""
    from mlops_platform.contracts import validate as validation

    batch = flights_frame(
        {},
        {"carrier": None},
        {"arr_delay": 5000.0},
        {"carrier": "ZZ"},
        {"origin": "BOS"},
        {"flight": 77},
        {"flight": 77},
        {"time_hour": pd.Timestamp("2013-01-05")},  # not fresh: a table rule
    )

    def judged(report):
        outcomes = sorted(
            (o.scope, o.expectation, o.column, o.success, o.unexpected_count)
            for o in report.outcomes
        )
        reasons = dict(zip(report.bad_rows.index, report.bad_rows[REASON_COLUMN], strict=True))
        return outcomes, {i: sorted(r.split("; ")) for i, r in reasons.items()}

    whole = judged(validate(batch))
    monkeypatch.setattr(validation, "SPLIT_ROWS", 0)
    split = judged(validate(batch))
    assert split == whole
    assert len(whole[1]) == 6 and any(not o[3] for o in whole[0])


def test_the_whole_table_unique_key_rule_can_fail():
    """The profile the table rules judge is the table after the publish: a fresh row replaces its
    key's stored row, but a key already stored twice (a corrupted raw table) stays twice and
    fails the unique-key rule, which is therefore a check that can fail."""
    from mlops_platform.contracts.audit import after_publish

    key = CONTRACTS["flights"].key
    stored = flights_frame({}, {}, {"flight": 2, "dep_delay": 9.0})[[*key, "updated_at"]]
    fresh = flights_frame({"updated_at": pd.Timestamp("2013-01-02 20:00")})[[*key, "updated_at"]]
    profile = after_publish(stored, fresh, list(key))
    assert len(profile) == 3  # flight 1 replaced by the fresh row; flight 2 still twice
    assert (profile.loc[profile["flight"] == 1, "updated_at"] == fresh["updated_at"][0]).all()
    batch = flights_frame({})
    report = validate_contract(CONTRACTS["flights"], batch, profile, {"carrier": ["UA"]}, None)
    failed = {(o.scope, o.expectation) for o in report.failures}
    assert ("table", "expect_compound_columns_to_be_unique") in failed, failed
    # Without the stored duplicate, the same publish passes.
    clean = after_publish(stored.drop_duplicates(list(key)), fresh, list(key))
    report = validate_contract(CONTRACTS["flights"], batch, clean, {"carrier": ["UA"]}, None)
    assert report.success, report.failures


def test_missing_column_and_stale_table_fail_the_table_rules():
    batch = flights_frame({}).drop(columns=["dest"])
    report = validate(batch, now=dt.datetime(2013, 2, 1))
    failed = {(o.expectation, o.column) for o in report.failures}
    assert ("expect_column_to_exist", "dest") in failed
    assert ("expect_column_max_to_be_between", "updated_at") in failed


def test_empty_table_fails_the_row_count():
    empty = flights_frame({}).head(0)
    report = validate_contract(
        CONTRACTS["airlines"], empty[[]], pd.DataFrame({"carrier": [], "name": []}), {}, None
    )
    assert ("expect_table_row_count_to_be_between", "*") in {
        (o.expectation, o.column) for o in report.failures
    }


@dg.asset(deps=[dg.AssetKey(["raw", "flights"])])
def flights_consumer() -> int:
    """Stands in for the features built on raw.flights: it must not run on a bad batch."""
    return 1


def inject_bad_batch(source_url: str) -> None:
    """Four bad flights and one good one, all published at 2013-01-02 06:00."""
    stamp = "2013-01-02 06:00:00.000000"
    columns = (
        "year, month, day, sched_dep_time, sched_arr_time, carrier, flight, tailnum, origin, "
        "dest, distance, hour, minute, time_hour, status, updated_at, arr_delay"
    )
    rows = [
        ("NULL", 9001, "'EWR'", "NULL"),  # null carrier in the key
        ("'UA'", 9002, "'EWR'", "4000"),  # impossible arrival delay
        ("'ZZ'", 9003, "'JFK'", "NULL"),  # unknown carrier
        ("'UA'", 9004, "'LGA'", "NULL"),  # duplicate key ...
        ("'UA'", 9004, "'LGA'", "NULL"),  # ... twice in the same batch
        ("'AA'", 9005, "'JFK'", "NULL"),  # a good row
    ]
    for carrier, flight, origin, delay in rows:
        source_execute(
            source_url,
            f"INSERT INTO flights ({columns}) VALUES (2013, 1, 2, 900, 1200, {carrier}, "
            f"{flight}, 'N1', {origin}, 'ORD', 700, 9, 0, '2013-01-02 14:00:00.000000', "
            f"'scheduled', '{stamp}', {delay})",
        )


def test_bad_batch_fails_the_check_stops_downstream_and_is_quarantined(resources, source_url):
    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    assert ingest(resources, flights_consumer).success
    inject_bad_batch(source_url)
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))

    with dg.instance_for_test() as instance:
        result = ingest(resources, flights_consumer, instance=instance)
        checks = check_results(result)
        assert not checks["flights"].passed
        assert checks["flights"].severity == dg.AssetCheckSeverity.ERROR
        metadata = checks["flights"].metadata
        assert metadata["quarantined_rows"].value == 5
        assert "expect_column_values_to_be_in_set" in metadata["failures"].value
        assert "9003" in metadata["bad_rows_sample"].value
        # The blocking check stopped the downstream asset; the other tables are unaffected.
        assert checks["weather"].passed and checks["airlines"].passed
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        assert dg.AssetKey("flights_consumer") not in materialized
        consumer = [
            entry.dagster_event.event_type_value
            for entry in instance.all_logs(result.run_id)
            if entry.dagster_event and entry.dagster_event.step_key == "flights_consumer"
        ]
        # Planned in the run, never started: the failed check held it back.
        assert "ASSET_MATERIALIZATION_PLANNED" in consumer
        assert "STEP_START" not in consumer and "ASSET_MATERIALIZATION" not in consumer

    kept = pending_quarantine(warehouse, "flights").sort_values("flight")
    assert list(kept["flight"]) == [9001, 9002, 9003, 9004, 9004]
    assert kept[REASON_COLUMN].str.len().min() > 0
    assert kept["_dagster_run_id"].nunique() == 1
    raw = warehouse.query("SELECT flight FROM raw.flights WHERE flight >= 9001 AND day = 2")
    assert list(raw["flight"]) == [9005]  # only the good row of the batch was published
    assert "mlops quarantine list --table flights" in checks["flights"].description

    # Next run: the rows at the cursor are read again, but they are already quarantined with
    # the same reason, so nothing new fails and downstream runs again.
    again = ingest(resources, flights_consumer)
    assert check_results(again)["flights"].passed
    assert again.success
    assert len(pending_quarantine(warehouse, "flights")) == 5


def test_quarantined_rows_replay_once_they_pass(resources, source_url, capsys):
    from mlops_platform.cli import main

    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    assert ingest(resources).success
    inject_bad_batch(source_url)
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))
    assert not ingest(resources).success

    contract = CONTRACTS["flights"]
    carriers = list(warehouse.query("SELECT carrier FROM raw.airlines")["carrier"])
    now = dt.datetime(2013, 1, 2, 6)

    def outcomes(found):
        return sorted((json.loads(o.key)[4], o.outcome) for o in found)

    first = replay_quarantine(warehouse, contract, {"carrier": carriers}, now)
    # The two versions of 9004 resolve to one, which now passes alone; the others stay, each
    # with its reason.
    assert outcomes(first) == [
        (9001, "kept"),
        (9002, "kept"),
        (9003, "kept"),
        (9004, "replayed"),
        (9004, "superseded"),
    ]
    reasons = {json.loads(o.key)[4]: o.reason for o in first if o.outcome == "kept"}
    assert "expect_column_values_to_be_in_set(carrier)" in reasons[9003]
    assert "expect_column_values_to_be_between(arr_delay)" in reasons[9002]
    # The carrier ZZ is registered; its flight can now be replayed, the others stay.
    second = replay_quarantine(warehouse, contract, {"carrier": [*carriers, "ZZ"]}, now)
    assert outcomes(second) == [(9001, "kept"), (9002, "kept"), (9003, "replayed")]
    back = warehouse.query("SELECT carrier FROM raw.flights WHERE flight IN (9003, 9004)")
    assert sorted(back["carrier"]) == ["UA", "ZZ"]
    assert len(pending_quarantine(warehouse, "flights")) == 2
    assert len(warehouse.read_table("quarantine", "flights")) == 5  # the log keeps every row

    # The CLI prints each row's outcome and reason.
    main(["quarantine", "replay", "--table", "flights"])
    printed = capsys.readouterr().out
    assert "9001" in printed and "kept - expect_column_values_to_not_be_null(carrier)" in printed
    assert "quarantine.flights: 2 kept" in printed


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("flights", "dep_time", 2500),
        ("flights", "arr_time", 0),
        ("flights", "sched_dep_time", 2400),
        ("flights", "hour", 24),
        ("flights", "dep_delay", -500),
        ("flights", "arr_delay", 5000),
        ("flights", "air_time", 2),
        ("weather", "hour", 25),
        ("weather", "wind_dir", 400),
        ("weather", "wind_speed", 1048.36),
        ("weather", "pressure", 500),
    ],
)
def test_every_time_and_delay_column_has_a_range(table, column, value):
    contract = CONTRACTS[table]
    assert column in contract.ranges
    if table == "flights":
        batch = flights_frame({}, {column: value})
    else:
        batch = pd.DataFrame(
            [
                {"origin": "EWR", "time_hour": pd.Timestamp("2013-01-02 05:00"), "hour": 5},
                {"origin": "JFK", "time_hour": pd.Timestamp("2013-01-02 05:00"), column: value},
            ]
        )
    report = validate_contract(contract, batch, batch[contract.key], {"carrier": ["UA"]}, None)
    assert list(report.bad_rows.index) == [1]
    assert f"expect_column_values_to_be_between({column})" in report.bad_rows[REASON_COLUMN][1]


def test_a_failing_reference_table_holds_back_the_tables_that_reference_it(resources, source_url):
    """The raw tables of a source publish in one step: when raw.airlines (which raw.flights
    takes its allowed carriers from) fails its contract, raw.flights is not published in that
    step (its rows stay landed), the tables that do not reference it are, and the next run
    publishes flights once airlines passes."""
    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    assert ingest(resources).success
    before = int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    source_execute(
        source_url,
        "INSERT INTO airlines (carrier, name, updated_at) "
        "VALUES ('Q9', 'From the future', '2020-01-01 00:00:00.000000')",
    )
    replay.advance(source_url, 1)

    result = ingest(resources)
    checks = check_results(result)
    assert not result.success
    assert not checks["airlines"].passed
    assert checks["planes"].passed and checks["airports"].passed
    assert "flights" not in checks  # not judged in this step: held back
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["raw", "flights"]) not in materialized
    assert dg.AssetKey(["raw", "airlines"]) in materialized
    held = int(warehouse.query("SELECT count(*) AS n FROM landing.flights")["n"].iloc[0])
    assert held > 0
    assert int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0]) == before
    assert list(pending_quarantine(warehouse, "airlines")["carrier"]) == ["Q9"]

    # The future airline stays quarantined (read again, not reported again): flights publish.
    again = ingest(resources)
    assert again.success, check_results(again)
    assert check_results(again)["flights"].passed
    after = int(warehouse.query("SELECT count(*) AS n FROM raw.flights")["n"].iloc[0])
    assert after > before
