"""Column classification: declared for every raw column, enforced on specs, masked in examples."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pytest
import yaml

from mlops_platform.contracts.classification import CLASSIFICATION, classified_columns
from mlops_platform.contracts.rules import CONTRACTS
from mlops_platform.domains.flights.features import FEATURE_FUNCTIONS, FEATURE_INPUTS
from mlops_platform.privacy import MASK, DataClass, MaskingFilter, mask_text
from mlops_platform.specs import load_spec, spec_path
from mlops_platform.warehouse.resources import DuckDBWarehouse
from mlops_platform_tests.helpers import check_results, ingest, source_execute
from simulator.flights import replay


def test_tailnum_is_a_quasi_identifier_and_lookups_cover_tables_and_the_domain():
    assert classified_columns("flights") == {"tailnum": DataClass.QUASI_IDENTIFIER}
    assert classified_columns("planes") == {"tailnum": DataClass.QUASI_IDENTIFIER}
    assert classified_columns("weather") == {}
    assert classified_columns() == {"tailnum": DataClass.QUASI_IDENTIFIER}
    with pytest.raises(KeyError, match="no_such_table"):
        classified_columns("no_such_table")


def test_every_loaded_raw_column_and_every_contract_table_is_classified(golden):
    warehouse = DuckDBWarehouse(path=str(golden / "warehouse.duckdb"))
    assert set(CONTRACTS) <= set(CLASSIFICATION)
    for table in CONTRACTS:
        loaded = {c for c in warehouse.columns("raw", table) if not c.startswith("_dlt")}
        undeclared = loaded - set(CLASSIFICATION[table])
        assert not undeclared, f"raw.{table} columns without a classification: {undeclared}"
    for columns in CLASSIFICATION.values():
        assert all(len(c.reason) > 10 for c in columns.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("row tailnum=N12345 failed", f"row tailnum={MASK} failed"),
        ("{'tailnum': 'N12345', 'seats': 5000}", f"{{'tailnum': {MASK}, 'seats': 5000}}"),
        ('{"tailnum": "N 1", "flight": 9}', f'{{"tailnum": {MASK}, "flight": 9}}'),
        ("tailnum: N12345, carrier: UA", f"tailnum: {MASK}, carrier: UA"),
        ("(tailnum=N1)", f"(tailnum={MASK})"),
        ("the tailnum column is missing", "the tailnum column is missing"),
        ("old_tailnum=N1 seats=3", "old_tailnum=N1 seats=3"),
    ],
)
def test_classified_values_are_masked_in_free_text(text, expected):
    assert mask_text(text, ["tailnum"]) == expected


def test_log_lines_are_masked_by_the_filter(caplog):
    logger = logging.getLogger("mlops.test_privacy")
    logger.addFilter(MaskingFilter(classified_columns()))
    with caplog.at_level(logging.INFO, logger="mlops.test_privacy"):
        logger.info("bad plane %s", {"tailnum": "N12345", "seats": 5000})
    (record,) = caplog.records
    assert "N12345" not in record.getMessage() and MASK in record.getMessage()
    assert "5000" in record.getMessage()


def _spec_without_allowance(tmp_path, name="flight_delay"):
    raw = yaml.safe_load(spec_path(name).read_text())
    raw.pop("privacy")
    return raw


def _write(tmp_path, raw) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_real_specs_load_with_a_stated_reason_for_the_tail_number():
    for name in ("flight_delay", "flight_delay_minutes"):
        (allowance,) = load_spec(name).privacy.allow
        assert allowance.column == "tailnum" and "join key" in allowance.reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # The plane function joins by tail number: without an allowance the spec is refused.
        (lambda raw: None, "reads flights.tailnum, classified quasi_identifier"),
        (
            lambda raw: raw.update(privacy={"allow": [{"column": "tailnum", "reason": "join"}]}),
            "at least 20 characters",
        ),
        (
            lambda raw: raw.update(
                privacy={
                    "allow": [
                        {"column": "tailnum", "reason": "join key to the plane attributes"},
                        {"column": "seats", "reason": "left over from an older feature set"},
                    ]
                }
            ),
            "privacy.allow lists 'seats', which no feature reads",
        ),
    ],
)
def test_spec_privacy_rules_are_enforced_when_the_spec_loads(tmp_path, change, message):
    raw = _spec_without_allowance(tmp_path)
    change(raw)
    with pytest.raises(ValueError, match=message) as failure:
        load_spec(_write(tmp_path, raw))
    assert "spec.yaml" in str(failure.value)


def test_a_spec_that_drops_the_plane_function_needs_no_allowance(tmp_path):
    raw = _spec_without_allowance(tmp_path)
    raw["features"]["functions"] = ["schedule", "calendar", "weather"]
    plane = {"plane_age", "seats", "engines", "manufacturer"}
    raw["features"]["numeric"] = [c for c in raw["features"]["numeric"] if c not in plane]
    raw["features"]["categorical"] = [c for c in raw["features"]["categorical"] if c not in plane]
    assert load_spec(_write(tmp_path, raw)).privacy.allow == []


def test_a_classified_column_produced_as_a_feature_is_refused(tmp_path, monkeypatch):
    # A function that would return the tail number as a feature column.
    monkeypatch.setitem(FEATURE_INPUTS, "registration", {"flights": ("carrier",)})
    monkeypatch.setitem(
        FEATURE_FUNCTIONS, "registration", lambda flights, **_: flights[["tailnum"]]
    )
    raw = yaml.safe_load(spec_path("flight_delay").read_text())
    raw["features"]["functions"].append("registration")
    raw["features"]["categorical"].append("tailnum")
    # The tail number is allowed for the plane join, so naming it as a feature is allowed too;
    # without that allowance both uses are reported.
    assert "tailnum" in load_spec(_write(tmp_path, raw)).features.categorical
    raw.pop("privacy")
    with pytest.raises(ValueError, match="feature 'tailnum' is classified quasi_identifier"):
        load_spec(_write(tmp_path, raw))


def test_feature_functions_read_only_the_columns_they_declare(golden):
    """Each function gives the same result from its declared columns alone as from the whole
    tables, so the declaration the spec check relies on is the truth."""
    warehouse = DuckDBWarehouse(path=str(golden / "warehouse.duckdb"))
    tables = {
        # Three days: the recent-state function reads the days before a flight's own.
        "flights": warehouse.query("SELECT * FROM raw.flights WHERE month = 2 AND day <= 3"),
        "weather": warehouse.query("SELECT * FROM raw.weather WHERE month = 2 AND day <= 3"),
        "planes": warehouse.read_table("raw", "planes"),
    }
    for frame in (tables["flights"], tables["weather"]):
        frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    assert set(FEATURE_INPUTS) == set(FEATURE_FUNCTIONS)
    for name, function in FEATURE_FUNCTIONS.items():
        whole = function(tables["flights"], weather=tables["weather"], planes=tables["planes"])
        only = {t: tables[t][list(FEATURE_INPUTS[name].get(t, []))] for t in tables}
        alone = function(only["flights"], weather=only["weather"], planes=only["planes"])
        pd.testing.assert_frame_equal(whole, alone, obj=name)


def test_the_feature_table_holds_no_classified_column(golden_features):
    assert not set(golden_features.columns) & set(classified_columns())


def test_contract_check_metadata_masks_the_tail_number(resources, source_url):
    """A bad plane is quarantined with its tail number, but the check's examples mask it."""
    replay.advance(source_url, 1)
    assert ingest(resources).success
    source_execute(
        source_url,
        "INSERT INTO planes (tailnum, year, type, manufacturer, model, engines, seats, "
        "updated_at) VALUES ('N999ZZ', 1800, 'Fixed wing', 'PIPER', 'PA-32', 1, 5000, "
        "'2013-01-02 06:00:00.000000')",
    )
    replay.set_clock(source_url, dt.datetime(2013, 1, 2, 6))
    check = check_results(ingest(resources))["planes"]
    assert not check.passed and check.metadata["quarantined_rows"].value == 1
    shown = " ".join(str(value.value) for value in check.metadata.values())
    assert "N999ZZ" not in shown
    assert MASK in check.metadata["bad_rows_sample"].value
    assert "expect_column_values_to_be_between" in check.metadata["failures"].value
    kept = resources["warehouse"].read_table("quarantine", "planes")
    # The data itself is kept whole, in quarantine (the row as JSON, contracts/quarantine.py).
    assert [json.loads(row)["tailnum"] for row in kept["_row"]] == ["N999ZZ"]


@pytest.mark.parametrize(
    ("expectation", "column", "observed", "expected"),
    [
        ("expect_column_values_to_be_unique", "tailnum", "N1, N2", MASK),
        ("expect_compound_columns_to_be_unique", "carrier,tailnum", "{'UA', 'N1'}", MASK),
        ("expect_column_to_exist", "tailnum", "missing", "missing"),
        ("expect_column_values_to_be_between", "seats", "5000", "5000"),
        ("expect_column_values_to_be_in_set", "carrier", "tailnum=N1", f"tailnum={MASK}"),
        ("expect_column_values_to_not_be_null", "tailnum", "", ""),
    ],
)
def test_expectation_observations_are_masked_for_classified_columns(
    expectation, column, observed, expected
):
    from mlops_platform.privacy import mask_observed

    assert mask_observed(expectation, column, observed, classified_columns()) == expected


def test_a_feature_function_that_declares_nothing_is_refused(tmp_path):
    raw = yaml.safe_load(spec_path("flight_delay").read_text())
    raw["features"]["functions"].append("undeclared")
    with pytest.raises(ValueError, match=r"\['undeclared'\] are not in FEATURE_FUNCTIONS"):
        load_spec(_write(tmp_path, raw))
