"""Domain declarations: strict, errors naming the file and the field; specs found in their
domain's folder; a new domain is a folder (declaration, features.py, spec), not platform code."""

from __future__ import annotations

import copy
import datetime as dt
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_platform.domains import (
    DOMAINS_DIR,
    domain_for,
    enabled_domain_names,
    enabled_spec_names,
    load_domain,
    read_declaration,
)
from mlops_platform.domains.partitions import partitions_def
from mlops_platform.features.build import build_feature_table
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, LABEL
from mlops_platform.specs import load_spec, spec_path

FLIGHTS_YAML = DOMAINS_DIR / "flights" / "domain.yaml"


def test_the_flights_declaration_fills_the_domain_interface():
    flights = load_domain("flights")
    assert flights.entity_key == ("year", "month", "day", "carrier", "flight", "origin")
    assert flights.partitions.start == dt.date(2013, 1, 1)
    assert flights.partitions.timezone == "America/New_York"
    assert flights.label.table == "flights" and flights.label.column == "arr_delay"
    assert flights.feedback_key == list(flights.entity_key)
    assert flights.tables["flights"].lookback == dt.timedelta(days=1)
    assert flights.source_of("weather").kind == "rest"
    assert domain_for(load_spec("flight_delay")) is flights
    assert spec_path("flight_delay").parent == FLIGHTS_YAML.parent
    days = partitions_def(flights)
    assert (days.get_first_partition_key(), days.get_last_partition_key()) == (
        "2013-01-01",
        "2013-12-31",
    )


def _write_flights(tmp_path, change) -> object:
    raw = yaml.safe_load(FLIGHTS_YAML.read_text())
    change(raw)
    folder = tmp_path / "flights"
    folder.mkdir()
    path = folder / "domain.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.update(owner="me"), r"owner: unknown field; did you mean 'owners'\?"),
        (
            lambda raw: raw.update(owners=["flights team"]),
            r"owners\[0\]: 'flights team' is not `team:<name>` .* or an email address",
        ),
        (
            lambda raw: raw.update(owners="team:flights"),
            r"owners: Input should be a valid list \(got 'team:flights'\)",
        ),
        (lambda raw: raw.update(owners=[]), r"owners: List should have at least 1 item"),
        (lambda raw: raw.pop("label"), r"\blabel: required field missing"),
        (
            lambda raw: raw["tables"]["flights"].update(
                primery_key=raw["tables"]["flights"].pop("primary_key")
            ),
            r"(?s):\n  tables.flights.primary_key: required field missing\n"
            r"  tables.flights.primery_key: unknown field; did you mean 'primary_key'\?",
        ),
        (
            lambda raw: raw["sources"]["flight_ops"].update(url_evn="X"),
            r"sources.flight_ops.url_evn: unknown field; did you mean 'url_env'\?",
        ),
        (
            lambda raw: raw["partitions"].update(start="2013-13-01"),
            r"partitions.start: .*month value is outside expected range .*'2013-13-01'",
        ),
        (
            lambda raw: raw["tables"]["planes"]["contract"]["ranges"].update(wingspan=[0, 90]),
            r"tables.planes.contract.ranges: \['wingspan'\] are not classified columns",
        ),
        (
            lambda raw: raw["tables"]["flights"].update(lookback="a fortnight"),
            r"tables.flights.lookback: 'a fortnight' is not a duration",
        ),
        (
            lambda raw: raw["tables"]["flights"]["contract"].update(
                references={"carrier": "carriers.code"}
            ),
            r"references.carrier: carriers.code is not a declared table column",
        ),
        (
            lambda raw: raw["partitions"].update(end="2012-12-31"),
            "partitions.end 2012-12-31 is before partitions.start 2013-01-01",
        ),
        (lambda raw: raw["event"].update(table="trips"), "event.table: 'trips' is not a declared"),
        (
            lambda raw: raw["tables"]["weather"]["contract"].update(on_source_delete="flag"),
            "tables.weather.contract.on_source_delete: only a sql source can list its keys",
        ),
        (lambda raw: raw.update(name="planes"), "name 'planes' differs from its folder"),
        (
            lambda raw: raw["tables"]["flights"].update(feature_days_after=10**12),
            "tables.flights.feature_days_after: Input should be less than or equal to 3660",
        ),
    ],
)
def test_an_invalid_declaration_names_the_file_and_the_field(tmp_path, change, message):
    path = _write_flights(tmp_path, change)
    with pytest.raises(ValueError, match=message) as failure:
        read_declaration(path)
    assert str(path) in str(failure.value)
    # Said for a person: no echo of the whole input, no links, no regular expression.
    assert "input_value" not in str(failure.value) and "errors.pydantic.dev" not in str(
        failure.value
    )
    assert "[A-Za-z0-9_-]" not in str(failure.value)


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = _write_flights(tmp_path, lambda raw: None)
    path.write_text(path.read_text().replace("entity_key:", "entity_key: [oops", 1))
    with pytest.raises(ValueError, match=rf'(?s)in "{path}", line \d+, column \d+'):
        read_declaration(path)


def test_a_spec_in_a_domain_folder_belongs_to_that_domain(tmp_path):
    path = _write_flights(tmp_path, lambda raw: None)
    spec = yaml.safe_load(spec_path("flight_delay").read_text())
    spec["domain"] = "rainfall"
    (path.parent / "odd.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=r"odd\.yaml.*'rainfall', but the spec is in domain"):
        load_spec(path.parent / "odd.yaml")


def test_enabled_specs_and_domains_follow_the_settings(monkeypatch):
    monkeypatch.delenv("MLOPS_MODEL_SPECS", raising=False)
    monkeypatch.delenv("MLOPS_DOMAINS", raising=False)
    assert enabled_spec_names() == load_domain("flights").default_specs == ["flight_delay"]
    assert enabled_domain_names() == ["flights"]
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay, flight_delay_minutes")
    assert enabled_spec_names() == ["flight_delay", "flight_delay_minutes"]
    assert enabled_domain_names() == ["flights"]
    monkeypatch.delenv("MLOPS_MODEL_SPECS")
    monkeypatch.setenv("MLOPS_DOMAINS", "flights,nowhere")
    with pytest.raises(ValueError, match=r"MLOPS_DOMAINS names \['nowhere'\]"):
        enabled_spec_names()


# A small domain of its own, declared in a folder outside the package: meter readings.
METERS = """
name: meters
description: Daily readings of electricity meters; usage is known the next morning.
entity: {singular: reading, plural: readings}
entity_key: [meter_id, day]
event: {table: readings, date: {column: day}, at: {column: read_at}}
partitions: {start: 2024-01-01, timezone: UTC}
label: {table: readings, column: usage, arrives: the morning after the day it measures}
sources:
  meter_db:
    kind: sql
    description: The metering database.
    resource: meter_db
    url_env: METERS_DB_URL
    default_file: meters.sqlite
feature_inputs: [readings]
leakage_columns: [usage]
default_specs: [high_usage]
tables:
  readings:
    source: meter_db
    description: One reading per meter and day.
    primary_key: [meter_id, day]
    cursor: updated_at
    feature_date: {column: day}
    contract:
      required_columns: [meter_id, day, read_at, temperature, updated_at]
      ranges: {temperature: [-50, 60], usage: [0, 1000]}
    classification:
      - class: identifier
        reason: a meter belongs to one household
        columns: [meter_id]
      - class: none
        reason: a day's reading and the outside temperature
        columns: [day, read_at, temperature, usage, updated_at]
"""

FEATURES = """
import pandas as pd

FEATURE_INPUTS = {"climate": {"readings": ("temperature", "day")}}


def base_frame(tables):
    return tables["readings"].reset_index(drop=True)


def climate(readings, **_):
    return pd.DataFrame(
        {"temperature": readings["temperature"].astype(float),
         "weekday": pd.to_datetime(readings["day"]).dt.dayofweek.astype(float)},
        index=readings.index,
    )


FEATURE_FUNCTIONS = {"climate": climate}
"""

SPEC = {
    "name": "high_usage",
    "domain": "meters",
    "description": "Will a meter read more than 20 kWh today?",
    "task": "classification",
    "target": {"column": "usage", "threshold": 20},
    "prediction_point": "the morning of the day",
    "features": {"functions": ["climate"], "numeric": ["temperature", "weekday"]},
    "training_window_days": 30,
    "holdout_days": 5,
    "gate": {
        "primary_metric": "roc_auc",
        "floors": {"roc_auc": {"min": 0.5}},
        "champion_tolerance": 0.01,
        "latency_single_row_ms": 50,
        "latency_1000_rows_ms": 250,
    },
}


@pytest.fixture()
def meters(tmp_path, monkeypatch):
    folder = tmp_path / "domains" / "meters"
    folder.mkdir(parents=True)
    (folder / "domain.yaml").write_text(textwrap.dedent(METERS))
    (folder / "features.py").write_text(textwrap.dedent(FEATURES))
    (folder / "high_usage.yaml").write_text(yaml.safe_dump(SPEC))
    monkeypatch.setenv("MLOPS_DOMAIN_PATH", str(tmp_path / "domains"))
    return folder


def test_a_new_domain_is_a_folder_and_needs_no_platform_code(meters, monkeypatch):
    spec = load_spec("high_usage")
    domain = domain_for(spec)
    assert domain.name == "meters" and domain.folder == meters
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "high_usage")
    assert enabled_domain_names() == ["meters"]
    days = pd.date_range("2024-01-01", periods=4, freq="D")
    readings = pd.DataFrame(
        {
            "meter_id": [7, 7, 7, 7],
            "day": days,
            "read_at": days + pd.Timedelta(hours=6),
            "temperature": [1.0, 2.0, 3.0, 4.0],
            "usage": [30.0, 10.0, np.nan, 25.0],
            "updated_at": days,
        }
    )
    table = build_feature_table({"readings": readings}, spec)
    assert list(table.columns) == [
        "meter_id",
        "day",
        EVENT_DATE,
        EVENT_AT,
        "temperature",
        "weekday",
        LABEL,
    ]
    assert table[LABEL].tolist()[:2] == [1.0, 0.0] and np.isnan(table[LABEL].iloc[2])
    assert (table[EVENT_AT] - table[EVENT_DATE] == pd.Timedelta(hours=6)).all()
    # No declared end: the partitions run up to the clock.
    last = partitions_def(domain).get_last_partition_key()
    assert dt.date.fromisoformat(last) >= dt.date.today() - dt.timedelta(days=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["features"]["numeric"].append("usage"), r"\['usage'\].*\(leakage\)"),
        (lambda s: s["target"].update(column="price"), "target.column 'price' is not a column"),
        (lambda s: s.update(domain="nowhere"), "no domain 'nowhere'"),
        (
            lambda s: s["features"]["numeric"].append("meter_id"),
            "feature 'meter_id' is classified identifier",
        ),
        (
            lambda s: s["features"]["functions"].append("climat"),
            r"features.functions: \['climat'\] are not in FEATURE_FUNCTIONS of domain meters's "
            r"features.py \(.*features.py\) \(it has \['climate'\]\)",
        ),
        (lambda s: s.update(holdout_day=3), r"holdout_day: unknown field; did you mean"),
    ],
)
def test_a_spec_is_checked_against_its_domain(meters, change, message):
    spec = copy.deepcopy(SPEC)
    change(spec)
    path = meters.parent / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=message):
        load_spec(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            # declared inputs, but no function of that name
            lambda text: text.replace('FEATURE_FUNCTIONS = {"climate": climate}', ""),
            r"features.py \(.*\) does not define FEATURE_FUNCTIONS",
        ),
        (
            lambda text: text.replace(
                'FEATURE_FUNCTIONS = {"climate": climate}', "FEATURE_FUNCTIONS = {}"
            ),
            r"\['climate'\] are not in FEATURE_FUNCTIONS .* \(it has \[\]\)",
        ),
        (
            lambda text: text.replace('FEATURE_INPUTS = {"climate"', 'FEATURE_INPUTS = {"other"'),
            r"\['climate'\] do not declare the raw columns they read",
        ),
    ],
)
def test_a_spec_is_checked_against_its_feature_functions(meters, edit, message):
    """features.py is read when the spec loads: a function the spec names must be in
    FEATURE_FUNCTIONS and declare its raw inputs (it was only noticed when the features were
    built, or never when a raw column of the same name stood in for the function's output)."""
    path = meters / "features.py"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=message):
        load_spec("high_usage")


def test_editing_features_py_rebuilds_the_feature_table(meters):
    """The feature table's definition covers the domain's feature code: after an edit of
    features.py the next build (a new run, a new process) is a full rebuild, not "no new raw
    data"; a process that imported the old code keeps the old digest with it."""
    import sys

    from mlops_platform.domains import features_module
    from mlops_platform.features.incremental import definition_digest

    spec = load_spec("high_usage")
    before = definition_digest(spec)
    path = meters / "features.py"
    path.write_text(path.read_text().replace("dayofweek", "dayofyear"))
    assert definition_digest(spec) == before  # this process still runs the old code
    sys.modules.pop(features_module(domain_for(spec)).__name__)  # as a new run's process
    assert "dayofyear" in features_module(domain_for(spec)).climate.__code__.co_names
    assert definition_digest(spec) != before


def test_mlops_check_says_what_is_built_or_what_is_wrong(meters, monkeypatch, capsys):
    """The guide's check: a summary when the folder is right; the file and the field, and no
    traceback, when it is not."""
    from mlops_platform.cli import main

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "high_usage")
    main(["check"])
    out = capsys.readouterr().out
    assert "high_usage: classification of meters" in out
    assert "features  temperature, weekday" in out
    assert "jobs      ingest, train_high_usage, daily_high_usage" in out
    declaration = meters / "domain.yaml"
    declaration.write_text(declaration.read_text().replace("entity_key:", "entity_keys:"))
    with pytest.raises(SystemExit) as failure:
        main(["check"])
    message = str(failure.value.code)
    assert message.startswith("mlops check: invalid model spec ")
    assert f"invalid domain declaration {declaration}:" in message
    assert "entity_keys: unknown field; did you mean 'entity_key'?" in message
    assert "Traceback" not in message


def test_two_domains_share_one_code_location(meters, monkeypatch):
    """Each domain's sources, tables and pipelines side by side; a daily job ingests only its
    own domain's tables."""
    from mlops_platform.definitions import build_definitions
    from mlops_platform.profiles import local_resources

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay,high_usage")
    assert enabled_domain_names() == ["flights", "meters"]
    specs = [load_spec("flight_delay"), load_spec("high_usage")]
    defs = build_definitions(specs, resources=local_resources())
    assert {"source_system", "weather_feed", "meter_db"} <= set(defs.resources)

    def selected(job: str) -> set[str]:
        keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        return {key.to_user_string() for key in keys}

    assert {"landing/readings", "raw/readings", "high_usage/scores"} <= selected("daily_high_usage")
    assert not {"landing/flights", "raw/weather"} & selected("daily_high_usage")
    assert "raw/readings" not in selected("daily_flight_delay")
