"""A domain's partition cadence (daily or monthly): the cycle's rule by period, each spec on its
own domain's partitions (ending at the declared end or the clock), the triggers asking for the
period before the clock's, and a monthly partition scored and monitored once in one run."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mlops_platform.domains import DOMAINS_DIR, load_domain, read_declaration
from mlops_platform.domains.partitions import build_partitions, partitions_def, partitions_end
from mlops_platform.domains.periods import (
    Period,
    period_before,
    period_from_key,
    period_of,
    periods_between,
)
from mlops_platform.monitoring.cycle import (
    MAX_ATTEMPTS,
    Request,
    Wait,
    next_request,
    scored_day,
    scored_period,
)
from mlops_platform.specs import load_spec

D = dt.date


# -- the rule, by period (pure) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("clock_day", "cadence", "key", "last"),
    [
        (D(2013, 3, 5), "daily", "2013-03-04", D(2013, 3, 4)),
        (D(2024, 1, 1), "daily", "2023-12-31", D(2023, 12, 31)),
        (D(2024, 3, 1), "daily", "2024-02-29", D(2024, 2, 29)),
        (D(1998, 10, 1), "monthly", "1998-09-01", D(1998, 9, 30)),
        (D(1998, 10, 31), "monthly", "1998-09-01", D(1998, 9, 30)),
        (D(2024, 1, 1), "monthly", "2023-12-01", D(2023, 12, 31)),  # Dec -> Jan
        (D(2024, 1, 20), "monthly", "2023-12-01", D(2023, 12, 31)),
        (D(2024, 3, 1), "monthly", "2024-02-01", D(2024, 2, 29)),  # a leap February
        (D(1999, 3, 31), "monthly", "1999-02-01", D(1999, 2, 28)),
        (D(1962, 8, 1), "monthly", "1962-07-01", D(1962, 7, 31)),
    ],
)
def test_the_cycle_asks_for_the_last_complete_period_before_the_clock(
    clock_day, cadence, key, last
):
    period = scored_period(clock_day, cadence)
    assert (period.key, period.last) == (key, last)
    assert period.end <= clock_day  # complete: it ended on or before the clock's day
    assert period_before(clock_day, cadence) == period
    request = next_request("rain", clock_day, False, False, 0, cadence=cadence)
    assert request == Request("daily_rain", key, 0)


def test_daily_is_the_default_and_scored_day_is_the_day_before():
    assert scored_day(D(2013, 1, 1)) == D(2012, 12, 31)
    assert scored_period(D(2013, 1, 1)) == Period(D(2012, 12, 31), D(2012, 12, 31))


def test_a_failed_month_is_retried_then_left_for_a_human():
    clock = D(2024, 1, 15)
    asks = [next_request("rain", clock, False, False, n, "monthly") for n in range(MAX_ATTEMPTS)]
    assert asks == [Request("daily_rain", "2023-12-01", n) for n in range(MAX_ATTEMPTS)]
    given_up = next_request("rain", clock, False, False, MAX_ATTEMPTS, "monthly")
    assert isinstance(given_up, Wait) and "failed 3 times" in given_up.reason
    assert "2023-12-01..2023-12-31" in given_up.reason
    running = next_request("rain", clock, False, True, 1, "monthly")
    assert isinstance(running, Wait) and "waiting for the running daily_rain" in running.reason
    done = next_request("rain", clock, True, False, 2, "monthly")
    assert done == Wait("2023-12-01..2023-12-31: done")
    # The next month asks for its own partition, attempts counted afresh.
    assert next_request("rain", D(2024, 2, 1), False, False, 0, "monthly") == Request(
        "daily_rain", "2024-01-01", 0
    )


def test_periods_from_keys_and_between_days():
    assert period_from_key("1998-09-01", "monthly") == Period(D(1998, 9, 1), D(1998, 9, 30))
    assert period_from_key("1998-09-15", "daily").days == 1
    with pytest.raises(ValueError, match="'1998-09-15' does not start a monthly period"):
        period_from_key("1998-09-15", "monthly")
    with pytest.raises(ValueError, match="'Sept' is not a date"):
        period_from_key("Sept", "monthly")
    with pytest.raises(ValueError, match="unknown cadence 'weekly'"):
        period_of(D(2020, 1, 1), "weekly")
    months = periods_between(D(1961, 11, 20), D(1962, 2, 3), "monthly")
    assert [p.key for p in months] == ["1961-11-01", "1961-12-01", "1962-01-01", "1962-02-01"]
    assert sum(p.days for p in months) == 30 + 31 + 31 + 28


# -- the declaration -----------------------------------------------------------------------------
RAINFALL_YAML = DOMAINS_DIR / "rainfall" / "domain.yaml"


def _rainfall_with(tmp_path, **partitions):
    raw = yaml.safe_load(RAINFALL_YAML.read_text())
    raw["partitions"].update(partitions)
    folder = tmp_path / "rainfall"
    folder.mkdir()
    path = folder / "domain.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cadence": "weekly"}, r"partitions\.cadence"),
        ({"start": dt.date(1949, 1, 15)}, "a monthly cadence starts on a month's first day"),
        ({"timezone": "Nebraska/Bellevue"}, "'Nebraska/Bellevue' is not an IANA time zone"),
        ({"every": "month"}, r"partitions\.every"),
    ],
)
def test_a_bad_cadence_names_the_file_and_the_field(tmp_path, change, message):
    path = _rainfall_with(tmp_path, **change)
    with pytest.raises(ValueError, match=message) as raised:
        read_declaration(path)
    assert str(path) in str(raised.value)


def test_cadence_is_declared_per_domain_with_daily_the_default(tmp_path):
    assert load_domain("rainfall").partitions.cadence == "monthly"
    assert load_domain("flights").partitions.cadence == "daily"
    raw = yaml.safe_load(RAINFALL_YAML.read_text())
    del raw["partitions"]["cadence"]
    (tmp_path / "rainfall").mkdir()
    path = tmp_path / "rainfall" / "domain.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert read_declaration(path).partitions.cadence == "daily"


# -- the partitions ------------------------------------------------------------------------------
def test_partitions_end_at_the_declared_end_or_the_clock_whichever_is_earlier():
    rainfall, flights = load_domain("rainfall"), load_domain("flights")
    months = partitions_def(rainfall)
    assert isinstance(months, dg.MonthlyPartitionsDefinition)
    # The declared last day, 1998-09-19, falls in September: its month is the last partition.
    assert (months.get_first_partition_key(), months.get_last_partition_key()) == (
        "1949-01-01",
        "1998-09-01",
    )
    assert partitions_end(rainfall.partitions, None) == D(1998, 10, 1)
    # A replay clock at 1960-03-05: the last complete month is February.
    at_clock = partitions_def(rainfall, until=dt.datetime(1960, 3, 5, 10))
    assert at_clock.get_last_partition_key() == "1960-02-01"
    assert at_clock.get_partition_keys()[:2] == ["1949-01-01", "1949-02-01"]
    # A clock past the declared end: the declared end wins.
    assert partitions_def(rainfall, until=D(2030, 1, 1)).get_last_partition_key() == "1998-09-01"
    # Before the first month is complete there is no partition yet (not an error).
    assert partitions_def(rainfall, until=D(1949, 1, 20)).get_partition_keys() == []
    days = partitions_def(flights, until=dt.datetime(2013, 3, 5, 0, 30))
    assert isinstance(days, dg.DailyPartitionsDefinition)
    assert days.get_last_partition_key() == "2013-03-04"
    assert days.timezone == "America/New_York"


def test_with_no_declared_end_the_partitions_follow_the_clock():
    undeclared = load_domain("rainfall").partitions.model_copy(update={"end": None})
    assert partitions_end(undeclared, None) is None
    open_ended = build_partitions(undeclared)
    # Dagster's own clock decides (the wall clock, unless told otherwise).
    with dg.partition_loading_context(effective_dt=dt.datetime(1970, 6, 2, tzinfo=dt.UTC)):
        assert open_ended.get_last_partition_key() == "1970-05-01"
    assert build_partitions(undeclared, until=D(1970, 6, 2)).get_last_partition_key() == (
        "1970-05-01"
    )


def test_clock_time_at_load(tmp_path):
    from mlops_platform.clock import TableClock, WallClock, time_at_load

    assert time_at_load(WallClock()) is None  # Dagster's partitions follow it by themselves
    assert time_at_load(TableClock(url=dg.EnvVar("MLOPS_CLOCK_URL"))) is None
    nowhere = tmp_path / "nowhere-at-all.sqlite"
    assert time_at_load(TableClock(url=f"sqlite:///{nowhere}")) is None
    # Reading it did not create the file where the source database will be made.
    assert not nowhere.exists()


def _clock_db(path, now: dt.datetime) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS replay_clock (now DATETIME NOT NULL)"))
        conn.execute(sa.text("DELETE FROM replay_clock"))
        conn.execute(sa.text("INSERT INTO replay_clock VALUES (:now)"), {"now": now})
    engine.dispose()
    return url


def test_two_domains_in_one_location_each_with_its_own_partitions(tmp_path, monkeypatch):
    from mlops_platform.clock import TableClock, time_at_load
    from mlops_platform.definitions import build_definitions

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay,rain")
    specs = [load_spec("flight_delay"), load_spec("rain")]
    defs = build_definitions(specs, profile="local")
    graph = defs.resolve_asset_graph()
    expected = {
        "flight_delay": dg.DailyPartitionsDefinition,
        "rain": dg.MonthlyPartitionsDefinition,
    }
    for name, kind in expected.items():
        for stage in ("scores", "drift", "performance", "deploy_guard"):
            partitions = graph.get(dg.AssetKey([name, stage])).partitions_def
            assert isinstance(partitions, kind), (name, stage)
        for job in (f"daily_{name}", f"score_{name}", f"monitor_{name}"):
            assert isinstance(defs.resolve_job_def(job).partitions_def, kind), job
        assert defs.resolve_sensor_def(f"daily_cycle_{name}")
    rain = defs.resolve_job_def("daily_rain").partitions_def
    assert (rain.get_first_partition_key(), rain.get_last_partition_key()) == (
        "1949-01-01",
        "1998-09-01",
    )
    assert defs.resolve_job_def("daily_flight_delay").partitions_def.timezone == (
        "America/New_York"
    )
    # The rain job ingests only its own domain's tables.
    rain_keys = defs.resolve_job_def("daily_rain").asset_layer.executable_asset_keys
    assert dg.AssetKey(["raw", "daily_summary"]) in rain_keys
    assert dg.AssetKey(["raw", "flights"]) not in rain_keys

    # Built at a replay clock's time: both end there (the earlier of clock and declared end).
    clock = TableClock(url=_clock_db(tmp_path / "clock.sqlite", dt.datetime(1962, 8, 15, 3)))
    until = time_at_load(clock)
    assert until == dt.datetime(1962, 8, 15, 3)
    at_clock = build_definitions(specs, profile="local", partitions_until=until)
    assert at_clock.resolve_job_def("daily_rain").partitions_def.get_last_partition_key() == (
        "1962-07-01"
    )
    # The flights' partitions end where the clock is, before their first day: none yet.
    flights = at_clock.resolve_job_def("daily_flight_delay").partitions_def
    assert flights.get_partition_keys() == []


def test_the_code_location_ends_its_partitions_at_the_clock(data_dir, monkeypatch):
    """By default (what `make dev` loads) the partitions end at the clock: none before the
    source exists (a fresh machine loads, nothing is created), then the last complete day
    before the replay clock; the replay's own definitions are not bounded by it."""
    from mlops_platform.asset_keys import SCORES, stage_key
    from mlops_platform.definitions import build_definitions
    from simulator.definitions import build_simulated_definitions

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay")
    specs = [load_spec("flight_delay")]
    fresh = build_definitions(specs, profile="local").resolve_job_def("daily_flight_delay")
    assert fresh.partitions_def.get_last_partition_key() == "2013-12-31"  # the declared end
    assert not (data_dir / "flight_ops.sqlite").exists()

    _clock_db(data_dir / "flight_ops.sqlite", dt.datetime(2013, 3, 5, 6))
    for defs in (build_definitions(specs, profile="local"), build_simulated_definitions(specs)):
        days = defs.resolve_job_def("daily_flight_delay").partitions_def
        assert days.get_last_partition_key() == "2013-03-04"
        scores = defs.resolve_asset_graph().get(stage_key("flight_delay", SCORES))
        assert scores.partitions_def.get_last_partition_key() == "2013-03-04"
    unbounded = build_simulated_definitions(specs, partitions_until=None)
    last = unbounded.resolve_job_def("daily_flight_delay").partitions_def.get_last_partition_key()
    assert last == "2013-12-31"


def test_the_monthly_sensor_asks_for_last_month_retries_it_and_moves_on(tmp_path, monkeypatch):
    from mlops_platform.clock import TableClock
    from mlops_platform.definitions import build_definitions

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "rain")
    defs = build_definitions([load_spec("rain")], profile="local")
    cycle = defs.resolve_sensor_def("daily_cycle_rain")
    path = tmp_path / "clock.sqlite"

    def tick(instance, now):
        resources = {"clock": TableClock(url=_clock_db(path, now))}
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return cycle(context)

    def record(instance, request, status):
        instance.add_run(
            dg.DagsterRun(
                job_name="daily_rain",
                run_id=uuid.uuid4().hex,
                status=status,
                tags={**request.tags, "dagster/partition": request.partition_key},
            )
        )

    with dg.instance_for_test() as instance:
        request = tick(instance, dt.datetime(1963, 1, 1, 0, 30))  # Dec -> Jan
        assert request.partition_key == "1962-12-01"
        assert request.run_key == "cycle-rain-1962-12-01-0"
        assert request.tags == {
            "mlops/cycle": "rain",
            "mlops/cycle_partition": "1962-12-01",
            "mlops/cycle_day": "1962-12-31",
        }
        record(instance, request, dg.DagsterRunStatus.FAILURE)
        retry = tick(instance, dt.datetime(1963, 1, 9))  # same month: the same partition again
        assert retry.partition_key == "1962-12-01" and retry.run_key.endswith("-1")
        record(instance, retry, dg.DagsterRunStatus.SUCCESS)
        done = tick(instance, dt.datetime(1963, 1, 31, 23))
        assert isinstance(done, dg.SkipReason) and "done" in done.skip_message
        february = tick(instance, dt.datetime(1963, 2, 1, 0, 5))
        assert february.partition_key == "1963-01-01" and february.run_key.endswith("-0")
        # Past the declared end (September 1998 is the last month), it skips and says why.
        late = tick(instance, dt.datetime(1998, 11, 2))
        assert isinstance(late, dg.SkipReason) and "outside the partitions" in late.skip_message


def test_production_runs_the_monthly_cycle_on_the_first_of_each_month(monkeypatch):
    from zoneinfo import ZoneInfo

    from mlops_platform.definitions import build_definitions

    monkeypatch.delenv("MLOPS_CLOCK_URL", raising=False)
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay,rain")
    defs = build_definitions([load_spec("flight_delay"), load_spec("rain")], profile="production")
    daily = defs.resolve_schedule_def("daily_cycle_flight_delay")
    monthly = defs.resolve_schedule_def("daily_cycle_rain")
    assert daily.cron_schedule == "15 0 * * *"
    assert monthly.cron_schedule == "15 0 1 * *" and monthly.execution_timezone == "UTC"
    repo = defs.get_repository_def()
    at = dt.datetime(1998, 9, 1, 0, 15, tzinfo=ZoneInfo("UTC"))
    with dg.build_schedule_context(scheduled_execution_time=at, repository_def=repo) as context:
        [request] = monthly.evaluate_tick(context).run_requests
    assert request.partition_key == "1998-08-01"
    assert request.tags["mlops/cycle_day"] == "1998-08-31"
    later = at.replace(year=1999, month=1)
    with dg.build_schedule_context(scheduled_execution_time=later, repository_def=repo) as context:
        data = monthly.evaluate_tick(context)
    assert not data.run_requests and "outside the partitions" in data.skip_message


# -- a monthly partition, end to end against a real warehouse ------------------------------------
@pytest.fixture()
def station(data_dir, monkeypatch):
    """The rainfall station's replay database, its clock at 1962-09-01 10:00 (August's last rain
    report is in), where the local profile looks for it."""
    from simulator.rainfall import replay

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "rain")
    monkeypatch.delenv("MLOPS_CLOCK_URL", raising=False)
    monkeypatch.delenv("MLOPS_SIGNING_KEY", raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(data_dir / "dlt_global"))
    url = f"sqlite:///{data_dir / 'rainfall_station.sqlite'}"
    replay.create_source(url, start=dt.datetime(1962, 9, 1, 10))
    return url


def _run(defs, job: str, instance, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, **kwargs
    )
    failures = [
        e.event_specific_data.error.to_string()[-1500:]
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert result.success, f"{job}: {failures}"
    return result


def _materialized(result, key: str) -> dict[str, dict]:
    """{partition: metadata} of the run's materializations of `key`."""
    return {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node(key.replace("/", "__"))
        if m.asset_key.to_user_string() == key
    }


def test_a_month_is_scored_and_monitored_once_in_one_run(station, data_dir, monkeypatch):
    from mlops_platform.definitions import build_definitions
    from mlops_platform.scoring import score
    from mlops_platform.stores import plain_stores
    from mlops_platform_tests.test_model_lifecycle import relaxed

    # Reads of at most 40 rows: a chunk step of two months is scored in several reads, and
    # still gives one row per day.
    monkeypatch.setattr(score, "SCORE_ROWS", 40)
    spec = relaxed(load_spec("rain"))
    defs = build_definitions([spec], profile="local")
    stores = plain_stores("local")
    warehouse, registry = stores.warehouse, stores.mlflow.registry()
    range_tags = {
        "dagster/asset_partition_range_start": "1962-01-01",
        "dagster/asset_partition_range_end": "1962-07-01",
    }
    with dg.instance_for_test() as instance:
        # The station's two instrument-fault days (1958-11-05/-06) fail the contract once and
        # wait in quarantine; the next ingest publishes the rest.
        first = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not first.success
        _run(defs, "ingest", instance)
        _run(defs, "train_rain", instance)
        # A backfill's range, January to July, as one run: scored in chunk steps, monitored
        # once per month at its last day.
        backfill = _run(defs, "daily_rain", instance, tags=range_tags)
        month = _run(defs, "daily_rain", instance, partition_key="1962-08-01")
        rescored = _run(defs, "score_rain", instance, partition_key="1962-08-01")

    months = {f"1962-{m:02d}-01" for m in range(1, 8)}
    # Dagster records the one materialization for each partition of the range.
    scores = _materialized(backfill, "rain/scores")
    assert set(scores) == months
    scored = scores["1962-07-01"]
    assert (scored["rows"], scored["days"]) == (212, 212)  # Jan-Jul 1962, one row a day
    assert scored["counted_from"] == "chunks"  # every chunk ran: their reports, not a count
    assert (scored["first_day"], scored["last_day"]) == ("1962-01-01", "1962-07-31")
    drift = _materialized(backfill, "rain/drift")
    assert set(drift) == months
    july = drift["1962-07-01"]
    assert july["monitored_day"] == "1962-07-31" and july["partitions"] == 7
    # By July 31 scoring covers the 200-day window (from January 13): judged.
    assert july["window_full"] is True and july["window_days_scored"] == 200

    # One month, one run: 31 rows scored at once, monitored once at August 31.
    assert _materialized(month, "rain/scores")["1962-08-01"]["rows"] == 31
    august = _materialized(month, "rain/drift")["1962-08-01"]
    assert august["monitored_day"] == "1962-08-31" and "partitions" not in august
    assert august["window_full"] is True and august["status"] == "ok"
    performance = _materialized(month, "rain/performance")["1962-08-01"]
    assert performance["monitored_day"] == "1962-08-31"
    # The performance trigger judges its own window (rain: the last 30 days, one row a day).
    assert spec.drift.performance_window_days == 30
    assert performance["labelled_rows"] == 30 and performance["status"] == "ok"
    guard = _materialized(month, "rain/deploy_guard")["1962-08-01"]
    assert guard["monitored_day"] == "1962-08-31"

    # Re-scoring the month replaces its rows: still one row per day.
    again = _materialized(rescored, "rain/scores")["1962-08-01"]
    assert (again["rows"], again["replaced_rows"]) == (31, 31)
    per_day = warehouse.query(
        "SELECT CAST(event_date AS DATE) AS d, count(*) AS n FROM scores.rain GROUP BY 1"
    )
    assert len(per_day) == 212 + 31 and (per_day["n"] == 1).all()

    # The drift reports were computed once per judged month, never day by day: the six months
    # whose window was not yet covered wrote none.
    mlflow = registry.fluent()
    runs = mlflow.search_runs(experiment_ids=[registry.experiment_id("rain-monitoring")])
    names = sorted(runs["tags.mlflow.runName"])
    drift = [name for name in names if name.startswith("drift-")]
    assert drift == ["drift-1962-07-31", "drift-1962-08-31"]
    # Beside them, the champion's live-performance run (a point per judged month).
    assert sorted(set(names) - set(drift)) == ["live-performance-v1"]


def test_before_the_first_month_the_sensor_says_so(tmp_path, monkeypatch):
    from mlops_platform.clock import TableClock
    from mlops_platform.definitions import build_definitions

    monkeypatch.setenv("MLOPS_MODEL_SPECS", "rain")
    cycle = build_definitions([load_spec("rain")], profile="local").resolve_sensor_def(
        "daily_cycle_rain"
    )
    clock = TableClock(url=_clock_db(tmp_path / "clock.sqlite", dt.datetime(1949, 1, 20)))
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources={"clock": clock}) as context:
            skipped = cycle(context)
    assert isinstance(skipped, dg.SkipReason)
    assert "1948-12-01 is outside the partitions of daily_rain (1949-01-01..1998-09-01)" in (
        skipped.skip_message
    )
    assert "has not passed the first period" in skipped.skip_message


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (1, [1]),  # a daily run: one chunk
        (2, [1, 1]),
        (7, [2, 2, 2, 1]),  # a week: four steps, so four workers can share it
        (28, [7, 7, 7, 7]),
        (30, [6, 6, 6, 6, 6]),
        (365, [7] * 47 + [6] * 6),  # never more than a week in one step
    ],
)
def test_a_range_is_cut_into_consecutive_chunks_of_at_most_a_week(count, sizes):
    from mlops_platform.scoring.assets import chunk_label, chunk_range, chunks

    keys = [str(dt.date(2013, 1, 1) + dt.timedelta(days=i)) for i in range(count)]
    cut = chunks(keys)
    assert [len(c) for c in cut] == sizes
    assert [k for c in cut for k in c] == keys  # in order, each key once
    assert all(chunk_range(chunk_label(c)) == (c[0], c[-1]) for c in cut)
    assert chunks([]) == []


def test_the_summary_counts_from_its_chunks_only_when_they_cover_the_range():
    """Every chunk of the range reported: rows by version from the reports (a chunk with no
    rows adds no version). A chunk missing (a re-execution ran only the failed ones): None,
    and the summary counts the table instead."""
    from mlops_platform.scoring.assets import _stored_by_chunks, chunk_label, chunks

    keys = [str(dt.date(2013, 1, 2) + dt.timedelta(days=i)) for i in range(28)]
    labels = [chunk_label(c) for c in chunks(keys)]
    reports = {
        labels[0]: {"rows": 700, "model_version": "3"},
        labels[1]: {"rows": 650, "model_version": "3"},
        labels[2]: {"rows": 0, "model_version": "2"},
        labels[3]: {"rows": 640, "model_version": "4"},  # promoted while the run ran
    }
    assert _stored_by_chunks(reports, keys) == {"3": 1350, "4": 640}
    assert _stored_by_chunks({k: reports[k] for k in labels[1:]}, keys) is None
    assert _stored_by_chunks(reports, keys[:21]) is None  # not this run's chunks
