"""Model specs validate, and features are point-in-time correct with late labels."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_platform.domains.flights.features import WEATHER_COLUMNS as WEATHER_MEASURES
from mlops_platform.features.build import build_feature_table, features_from_warehouse
from mlops_platform.model.columns import EVENT_AT, EVENT_DATE, LABEL
from mlops_platform.model.split import plan_split, split_by_time
from mlops_platform.specs import load_spec, spec_path

SPEC = load_spec("flight_delay")


def test_both_specs_load_and_differ_only_in_data():
    regression = load_spec("flight_delay_minutes")
    assert SPEC.task == "classification" and regression.task == "regression"
    assert SPEC.higher_is_better and not regression.higher_is_better


def test_invalid_spec_names_the_file_and_the_field(tmp_path):
    raw = yaml.safe_load(spec_path("flight_delay").read_text())
    raw["features"]["numeric"].append("dep_delay")
    bad = tmp_path / "leaky.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"(?s)leaky\.yaml.*dep_delay.*leakage"):
        load_spec(bad)
    raw = yaml.safe_load(spec_path("flight_delay").read_text())
    del raw["gate"]["primary_metric"]
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="primary_metric"):
        load_spec(bad)
    with pytest.raises(FileNotFoundError, match="available: flight_delay"):
        load_spec("no_such_model")


def _with(name: str, path: str, value) -> dict:
    raw = yaml.safe_load(spec_path(name).read_text())
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    ("name", "path", "value", "error"),
    [
        # The day-block bootstrap needs 5 days a side (significance.MIN_GROUPS).
        ("flight_delay", "drift.performance_window_days", 4, "drift.performance_window_days: 4"),
        ("flight_delay", "drift.window_days", 4, "drift.window_days: 4 days"),
        ("flight_delay", "holdout_days", 4, "holdout_days: 4 days"),
        # Rain's labels come the next morning (label.lag_days 1): 5 days hold 4 labelled ones.
        ("rain", "drift.performance_window_days", 5, "leave 4 labelled days"),
        # A new flights model is 7 + 1 + 0 = 8 days old when trained.
        ("flight_delay", "drift.max_model_age_days", 8, "drift.max_model_age_days: 8 days"),
        ("flight_delay", "drift.max_model_age_days", 3, "already 8 days old"),
    ],
)
def test_windows_too_short_for_their_rules_are_refused_on_one_line(
    tmp_path, name, path, value, error
):
    bad = tmp_path / f"{name}.yaml"
    bad.write_text(yaml.safe_dump(_with(name, path, value)))
    with pytest.raises(ValueError) as refused:
        load_spec(bad)
    message = str(refused.value)
    assert "\n" not in message and error in message, message
    assert message.startswith(f"invalid model spec {bad}: {path}: ")


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("flight_delay", "drift.performance_window_days", 5),  # labelled the same day: 5 days
        ("rain", "drift.performance_window_days", 6),  # 5 labelled days
        ("flight_delay", "holdout_days", 5),
        ("flight_delay", "drift.max_model_age_days", 9),  # one day older than born
    ],
)
def test_the_shortest_windows_their_rules_can_judge_are_accepted(tmp_path, name, path, value):
    good = tmp_path / f"{name}.yaml"
    good.write_text(yaml.safe_dump(_with(name, path, value)))
    loaded = load_spec(good).model_dump()
    for part in path.split("."):
        loaded = loaded[part]
    assert loaded == value


@pytest.mark.parametrize(
    ("drift", "error"),
    [
        (
            {"age_loss_budget": 0.01, "max_model_age_days": None},
            "drift: age_loss_budget needs max_model_age_days",
        ),
        ({"min_model_age_days": 20, "age_loss_budget": None}, "set age_loss_budget too"),
        (
            {"age_loss_budget": 0.01, "min_model_age_days": 40, "max_model_age_days": 32},
            "min_model_age_days (40) is larger than max_model_age_days (32)",
        ),
        # A new flights model is 8 days old: a shortest limit of 8 would retrain every one.
        (
            {"age_loss_budget": 0.01, "min_model_age_days": 8},
            "drift.min_model_age_days: 8 days, but a new model is already 8 days old",
        ),
        ({"age_loss_budget": 0}, "drift.age_loss_budget: Input should be greater than 0"),
        ({"pace_comparisons": 3, "age_loss_budget": None}, "set age_loss_budget too"),
        ({"age_loss_budget": 0.01, "pace_comparisons": 0}, "pace_comparisons: Input should be"),
    ],
)
def test_an_adaptive_age_limit_needs_bounds_the_right_way_round(tmp_path, drift, error):
    raw = yaml.safe_load(spec_path("flight_delay").read_text())
    raw["drift"].update(drift)
    bad = tmp_path / "flight_delay.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError) as refused:
        load_spec(bad)
    message = str(refused.value)
    assert "\n" not in message and error in message, message
    assert message.startswith(f"invalid model spec {bad}: drift")


def test_a_new_model_is_as_old_as_the_split_makes_it():
    # The split at the clock after day D (labels of D known for flights): the model's data end
    # `newborn_age_days` before D.
    day = dt.date(2013, 5, 1)
    split = plan_split(day, SPEC)
    assert (day - split.train_end).days == SPEC.newborn_age_days == 8
    rain = load_spec("rain")
    split = plan_split(day - dt.timedelta(days=1), rain)  # day D's rain comes the next morning
    assert (day - split.train_end).days == rain.newborn_age_days == 202


def _flights(rows):
    base = {
        "year": 2013,
        "month": 1,
        "day": 2,
        "carrier": "UA",
        "flight": 1,
        "origin": "EWR",
        "dest": "ORD",
        "sched_dep_time": 900,
        "sched_arr_time": 1100,
        "minute": 0,
        "distance": 719.0,
        "tailnum": "N1",
        "arr_delay": np.nan,
        "status": "scheduled",
        "updated_at": pd.Timestamp("2013-01-01 12:00"),
    }
    return pd.DataFrame([{**base, **r} for r in rows])


WEATHER_COLUMNS = ["origin", "time_hour", *WEATHER_MEASURES]


def _weather(hours_and_temps):
    return pd.DataFrame(
        columns=WEATHER_COLUMNS,
        data=[
            {
                "origin": "EWR",
                "time_hour": pd.Timestamp(h, tz="UTC"),
                "temp": t,
                "dewp": 1.0,
                "humid": 50.0,
                "wind_dir": 0.0,
                "wind_speed": 5.0,
                "wind_gust": np.nan,
                "precip": 0.0,
                "pressure": 1010.0,
                "visib": 10.0,
            }
            for h, t in hours_and_temps
        ],
    ).astype({"time_hour": "datetime64[ns, UTC]"})


PLANES = pd.DataFrame(
    [{"tailnum": "N1", "year": 2003.0, "seats": 150, "engines": 2, "manufacturer": "BOEING"}]
)


def _build(flights, weather, spec):
    return build_feature_table({"flights": flights, "weather": weather, "planes": PLANES}, spec)


def test_weather_is_taken_at_or_before_the_scheduled_hour():
    flights = _flights([{"time_hour": pd.Timestamp("2013-01-02 14:00", tz="UTC")}])
    weather = _weather(
        [("2013-01-02 12:00", 30.0), ("2013-01-02 14:00", 35.0), ("2013-01-02 15:00", 99.0)]
    )
    table = _build(flights, weather, SPEC)
    assert table["temp"].iloc[0] == 35.0  # never the 15:00 observation
    stale = _weather([("2013-01-02 08:00", 30.0)])
    assert np.isnan(_build(flights, stale, SPEC)["temp"].iloc[0])
    assert table["plane_age"].iloc[0] == 10.0


def test_label_only_when_the_outcome_has_arrived():
    flights = _flights(
        [
            {"flight": 1, "arr_delay": 30.0, "time_hour": pd.Timestamp("2013-01-02 14:00")},
            {"flight": 2, "arr_delay": 3.0, "time_hour": pd.Timestamp("2013-01-02 14:00")},
            {"flight": 3, "arr_delay": np.nan, "time_hour": pd.Timestamp("2013-01-02 14:00")},
        ]
    )
    table = _build(flights, _weather([]), SPEC).set_index("flight")
    assert table.loc[1, LABEL] == 1.0 and table.loc[2, LABEL] == 0.0
    assert np.isnan(table.loc[3, LABEL])
    regression = load_spec("flight_delay_minutes")
    values = _build(flights, _weather([]), regression).set_index("flight")
    assert values.loc[1, LABEL] == 30.0


def test_recent_lateness_reads_only_outcomes_known_before_the_local_day_began():
    """A flight of Jan 3 (New York) sees the outcomes of earlier days that had landed by
    00:00 local on Jan 3 (05:00 UTC): not a flight of its own day, however early it landed,
    nor one of Jan 2 still in the air at midnight; a share over few flights is shrunk toward
    the share of all flights of those days."""
    from mlops_platform.domains.flights.features import PRIOR_FLIGHTS, recent

    def flight(day, number, delay, landed_utc, origin="EWR", status="landed"):
        return {
            "day": day,
            "flight": number,
            "origin": origin,
            "arr_delay": delay,
            "status": status,
            "updated_at": pd.Timestamp(landed_utc),
        }

    flights = _flights(
        [
            flight(1, 1, 40.0, "2013-01-01 20:00"),  # late, landed on Jan 1: counts
            flight(2, 2, 0.0, "2013-01-02 15:00"),  # on time, Jan 2: counts
            flight(2, 3, 60.0, "2013-01-03 06:00"),  # late, landed after Jan 3's midnight
            flight(2, 4, 90.0, "2013-01-03 03:00", origin="JFK"),  # late, JFK, before it
            flight(2, 5, np.nan, "2013-01-02 10:00", status="cancelled"),  # no outcome
            flight(3, 6, 99.0, "2013-01-03 07:00"),  # Jan 3's own: never its features
            flight(3, 7, np.nan, "2013-01-03 00:00", status="scheduled"),
        ]
    )
    features = recent(flights).set_index(flights["flight"])
    # Jan 3's flights at EWR: over the 7 days before, EWR had 1 late of 2 known outcomes; all
    # airports 2 late of 3.
    overall = 2 / 3
    expected = (1 + PRIOR_FLIGHTS * overall) / (2 + PRIOR_FLIGHTS)
    assert features.loc[7, "origin_late_7d"] == pytest.approx(expected)
    assert features.loc[6, "origin_late_7d"] == features.loc[7, "origin_late_7d"]
    # The day before only: Jan 2 had EWR 0 late of 1 known, all airports 1 of 2.
    assert features.loc[7, "origin_late_1d"] == pytest.approx(
        (0 + PRIOR_FLIGHTS * 0.5) / (1 + PRIOR_FLIGHTS)
    )
    # Jan 1 has no earlier day: nothing is known.
    assert np.isnan(features.loc[1, "origin_late_7d"])
    # A flight's own outcome never reaches its features: changing it changes nothing of its day.
    changed = flights.assign(arr_delay=flights["arr_delay"].where(flights["flight"] != 6, -5.0))
    pd.testing.assert_frame_equal(recent(changed).iloc[5:], recent(flights).iloc[5:])


def test_a_build_of_some_days_reads_the_inputs_they_reach():
    """Flights feed the next 7 days' recent-state features, and a weather hour (UTC) the local
    day before: a build of Feb 10-11 reads flights from Feb 3 and weather from Feb 9."""
    from mlops_platform.domains import domain_for
    from mlops_platform.features.build import input_where

    domain = domain_for(SPEC)
    since, until = dt.date(2013, 2, 10), dt.date(2013, 2, 12)
    flights = input_where(domain, "flights", since, until)
    assert "DATE '2013-02-03'" in flights and "DATE '2013-02-13'" in flights
    weather = input_where(domain, "weather", since, until)
    assert "DATE '2013-02-09'" in weather and "DATE '2013-02-14'" in weather
    assert input_where(domain, "planes", since, until) == ""  # reference data: all of it


def test_missing_raw_column_is_a_clear_error():
    flights = _flights([{"time_hour": pd.Timestamp("2013-01-02 14:00")}]).drop(columns="dest")
    with pytest.raises(ValueError, match=r"raw.flights lacks columns \['dest'\]"):
        _build(flights, _weather([]), SPEC)


def test_features_do_not_change_when_later_rows_arrive(resources, source_url):
    """Snapshot the warehouse on Jan 10, and again on Jan 20: every flight that had departed
    by Jan 10 has exactly the same features in both (only labels may arrive later)."""
    from mlops_platform_tests.helpers import ingest
    from simulator.flights import replay

    warehouse = resources["warehouse"]

    def snapshot():
        return features_from_warehouse(warehouse, SPEC)

    replay.set_clock(source_url, dt.datetime(2013, 1, 10))
    assert ingest(resources).success
    early = snapshot()
    replay.set_clock(source_url, dt.datetime(2013, 1, 20))
    assert ingest(resources).success
    late = snapshot()

    departed = early[early[EVENT_AT] < pd.Timestamp("2013-01-10")]
    key = ["year", "month", "day", "carrier", "flight", "origin"]
    merged = departed.merge(late, on=key, suffixes=("_early", "_late"))
    assert len(merged) == len(departed) > 7000
    for column in SPEC.features.columns:
        if column in key:
            continue
        a, b = merged[f"{column}_early"], merged[f"{column}_late"]
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), f"feature {column} changed for {int((~same).sum())} flights"
    assert len(late) > len(early)


def test_split_is_by_time_and_uses_labelled_rows_only():
    dates = pd.date_range("2013-01-01", "2013-03-31", freq="D").repeat(40)
    table = pd.DataFrame(
        {
            EVENT_DATE: dates,
            LABEL: np.where(dates > pd.Timestamp("2013-03-25"), np.nan, 1.0),
        }
    )
    train, holdout, split = split_by_time(table, SPEC)
    assert train[EVENT_DATE].max() < holdout[EVENT_DATE].min()
    assert holdout[LABEL].notna().all() and train[LABEL].notna().all()
    assert split.holdout_end == dt.date(2013, 3, 24)  # last labelled day (25th) is partial
    assert (split.holdout_end - split.holdout_start).days == SPEC.holdout_days - 1
    assert (split.train_end - split.train_start).days == SPEC.training_window_days - 1


def test_incremental_build_equals_a_full_rebuild(resources, source_url):
    """Day by day, the feature asset rebuilds only what new loads can affect (new flights,
    late outcomes, new weather hours); the table it keeps equals one built from scratch."""
    from mlops_platform.features.assets import build_feature_asset
    from mlops_platform_tests.helpers import QUIET, ingest
    from simulator.flights import replay

    warehouse = resources["warehouse"]
    feature_asset = build_feature_asset(SPEC)

    def build(instance, full_refresh=False):
        result = dg.materialize(
            [feature_asset],
            resources={"warehouse": warehouse},
            instance=instance,
            run_config={
                **QUIET,
                "ops": {f"{SPEC.name}__features": {"config": {"full_refresh": full_refresh}}},
            },
        )
        return result.get_asset_materialization_events()[0].materialization.metadata

    key = ["year", "month", "day", "carrier", "flight", "origin"]
    with dg.instance_for_test() as instance:
        replay.set_clock(source_url, dt.datetime(2013, 1, 8))
        assert ingest(resources).success
        assert build(instance)["build"].value == "no earlier build"
        assert build(instance)["rebuilt_rows"].value == 0  # nothing new: nothing rebuilt
        for _ in range(3):
            replay.advance(source_url, 1)
            assert ingest(resources).success
            meta = build(instance)
            # Only the days the new loads touched (yesterday's late outcomes on) are rebuilt.
            assert meta["rebuilt_from"].value >= "2013-01-06"
            assert 0 < meta["rebuilt_rows"].value < meta["rows"].value
        incremental = warehouse.read_table("features", SPEC.name).sort_values(key)
        build(instance, full_refresh=True)
        full = warehouse.read_table("features", SPEC.name).sort_values(key)
    pd.testing.assert_frame_equal(
        incremental.reset_index(drop=True), full.reset_index(drop=True), check_like=True
    )
    assert incremental["label"].notna().sum() > 5000


def test_a_build_in_spans_equals_one_built_in_one_piece(resources, source_url, monkeypatch):
    """A build goes span by span (memory follows a span): with spans of ~1,500 flights the
    whole table, and a rebuild from a day on, equal the table built in one piece; the side
    table of a full build is gone once it is swapped in."""
    from mlops_platform.features import build
    from mlops_platform_tests.helpers import ingest
    from simulator.flights import replay

    warehouse = resources["warehouse"]
    replay.set_clock(source_url, dt.datetime(2013, 1, 12))
    assert ingest(resources).success
    key = ["year", "month", "day", "carrier", "flight", "origin"]
    whole = build.features_from_warehouse(warehouse, SPEC).sort_values(key).reset_index(drop=True)

    monkeypatch.setattr(build, "SPAN_ROWS", 1_500)
    days = warehouse.query(
        "SELECT make_date(year, month, day) AS d, count(*) AS n FROM raw.flights GROUP BY 1 "
        "ORDER BY 1"
    )
    cuts = build.spans(
        [(d.date(), int(n)) for d, n in zip(days["d"], days["n"], strict=True)], None
    )
    assert len(cuts) >= 8 and cuts[-1][1] is None  # about a day each, the last open-ended

    def stored():
        table = warehouse.read_table("features", SPEC.name)
        return table.sort_values(key).reset_index(drop=True)

    warehouse.replace_table("features", SPEC.name, whole)  # in one piece, as it reads back
    whole = stored()
    assert build.write_features(warehouse, SPEC) == len(whole)
    pd.testing.assert_frame_equal(stored(), whole, check_like=True)
    assert not warehouse.table_exists("features", f"{SPEC.name}__rebuild")

    # From Jan 6 on: the rows before stay, the rows from it are rebuilt span by span.
    warehouse.execute("DELETE FROM features.flight_delay WHERE event_date >= DATE '2013-01-06'")
    rebuilt = build.write_features(warehouse, SPEC, since=dt.date(2013, 1, 6))
    assert rebuilt == int((whole["event_date"] >= pd.Timestamp("2013-01-06")).sum()) > 0
    pd.testing.assert_frame_equal(stored(), whole, check_like=True)
