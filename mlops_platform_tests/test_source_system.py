"""The replay clock and the weather feed behave like the operational systems they stand for."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from mlops_platform_tests.helpers import source_execute, source_query
from simulator.flights import replay
from simulator.flights.weather_feed import FeedServer


def test_clock_releases_schedules_then_outcomes(source_url):
    start = replay.read_clock(source_url)
    assert start.now == dt.datetime(2013, 1, 1)
    scheduled = source_query(source_url, "SELECT count(*), count(arr_delay) FROM flights")[0]
    # Jan 1's schedule is published at the start of the day, with no outcomes yet.
    assert scheduled[0] == 842 and scheduled[1] == 0

    step = replay.advance(source_url, 1)
    assert step.now == dt.datetime(2013, 1, 2)
    statuses = dict(source_query(source_url, "SELECT status, count(*) FROM flights GROUP BY 1"))
    # Jan 2's schedule is out; Jan 1 flights that landed before midnight UTC have outcomes,
    # evening flights are still in the air: their labels arrive later.
    assert statuses["scheduled"] > 842
    assert 0 < statuses["landed"] < 842
    rows = source_query(
        source_url,
        "SELECT count(*) FROM flights WHERE status = 'landed' AND arr_delay IS NULL",
    )
    assert rows[0][0] == 0


def test_outcome_changes_the_row_and_its_updated_at(source_url):
    before = dict(source_query(source_url, "SELECT id, updated_at FROM flights WHERE day = 1"))
    replay.advance(source_url, 1)
    after = source_query(
        source_url, "SELECT id, updated_at, status FROM flights WHERE day = 1 AND month = 1"
    )
    changed = [r for r in after if r[2] != "scheduled"]
    assert changed and all(r[1] > before[r[0]] for r in changed)


def test_every_known_outcome_is_applied_whenever_its_flight_is_released(source_url):
    """A move applies the outcome of every released flight known by the new time: those known
    since the last move included, for the flights it releases (an outcome known before the
    flight's schedule is published: here a Jan 3 flight whose outcome is set to Jan 1, 06:00,
    before the clock's 12:00 at the previous move)."""
    early = source_query(
        source_url,
        "SELECT id FROM replay_schedule WHERE sched_date = '2013-01-03' ORDER BY id LIMIT 1",
    )[0][0]
    source_execute(
        source_url,
        "UPDATE replay_schedule SET outcome_at = '2013-01-01 06:00:00.000000', "
        "outcome_status = 'cancelled' WHERE id = :id",
        {"id": early},
    )
    for days in (0.5, 1.5, 0.25, 2.75):  # fractional moves and moves over several days
        now = replay.advance(source_url, days).now
        pending = source_query(
            source_url,
            "SELECT count(*) FROM flights f JOIN replay_schedule s ON s.id = f.id "
            f"WHERE f.status = 'scheduled' AND s.outcome_at <= '{now:%Y-%m-%d %H:%M:%S.%f}'",
        )
        assert pending[0][0] == 0, f"outcomes known by {now} left unapplied"
    row = source_query(source_url, f"SELECT status, updated_at FROM flights WHERE id = {early}")
    assert row[0][0] == "cancelled" and str(row[0][1]).startswith("2013-01-01 06:00")


def test_clock_never_goes_backwards(source_url):
    replay.advance(source_url, 2)
    with pytest.raises(ValueError, match="only moves forward"):
        replay.set_clock(source_url, dt.datetime(2013, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        replay.advance(source_url, 0)


def test_missing_source_database_says_what_to_do(tmp_path):
    with pytest.raises(RuntimeError, match="simulator source init"):
        replay.read_clock(f"sqlite:///{tmp_path / 'nope.sqlite'}")


def test_weather_feed_pages_with_a_cursor_and_follows_the_clock(source_url):
    replay.advance(source_url, 2)
    total = source_query(
        source_url,
        "SELECT count(*) FROM weather_observations WHERE time_hour <= '2013-01-03 00:00:00.000000'",
    )[0][0]
    with FeedServer(source_url) as feed:
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{feed.url}/v1/observations", params=params).json()
            seen += page["observations"]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert pages > 1
        assert len(seen) == total
        keys = [(r["time_hour"], r["origin"]) for r in seen]
        assert len(set(keys)) == len(keys) and keys == sorted(keys)
        assert max(r["time_hour"] for r in seen) <= "2013-01-03T00:00:00"

        since = httpx.get(
            f"{feed.url}/v1/observations", params={"since": "2013-01-02T23:00:00"}
        ).json()
        assert {r["time_hour"] for r in since["observations"]} <= {
            "2013-01-02T23:00:00",
            "2013-01-03T00:00:00",
        }
        bad = httpx.get(f"{feed.url}/v1/observations", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and "invalid cursor" in bad.text


def test_bulk_insert_keeps_nulls(source_url):
    source_execute(source_url, "UPDATE planes SET seats = NULL WHERE tailnum = 'N10156'")
    assert source_query(source_url, "SELECT seats FROM planes WHERE tailnum = 'N10156'") == [
        (None,)
    ]
    assert source_query(source_url, "SELECT count(*) FROM planes WHERE speed IS NULL")[0][0] > 0


def test_the_platform_reads_the_replay_clock_through_its_clock_table(source_url):
    """The platform's `TableClock` knows only a table with a `now` column: it sees the replay
    clock move, as the simulator moves it."""
    from mlops_platform.clock import TableClock

    clock = TableClock(url=source_url)
    assert clock.now() == dt.datetime(2013, 1, 1)
    replay.advance(source_url, 1.5)
    assert clock.now() == dt.datetime(2013, 1, 2, 12) == replay.read_clock(source_url).now
    assert not clock.follows_wall_time


@pytest.mark.parametrize(
    ("setup", "table", "error", "message"),
    [
        ("", "replay_clock", "ClockUnavailable", r"no clock database at .* \(not created yet\)"),
        ("CREATE TABLE other (x INT)", "replay_clock", "ClockUnavailable", "no clock table"),
        ("CREATE TABLE t (now TIMESTAMP)", "t", "ClockUnavailable", "has no time yet"),
        ("", "t; DROP TABLE x", "ValueError", "plain SQL identifier"),
    ],
)
def test_a_clock_that_cannot_be_read_says_which_and_why(tmp_path, setup, table, error, message):
    import sqlalchemy as sa

    from mlops_platform import clock

    url = f"sqlite:///{tmp_path / 'clock.sqlite'}"
    if setup:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(setup))
        engine.dispose()
    exception = getattr(clock, error, None) or ValueError
    with pytest.raises(exception, match=message):
        clock.TableClock(url=url, table=table).now()


def test_the_wall_clock_is_utc_and_passes_by_itself():
    from mlops_platform.clock import WallClock

    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    now = WallClock().now()
    assert now.tzinfo is None and before <= now <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert WallClock().follows_wall_time


def test_the_feed_resource_serves_one_feed_per_process_that_follows_the_database(
    source_url, source_template
):
    import shutil

    from mlops_platform_tests.helpers import sources

    feed = sources(source_url)["weather_feed"]
    replay.advance(source_url, 2)
    with feed.serve() as first:
        before = httpx.get(f"{first}/v1/observations", params={"limit": 5000}).json()
    # A later run of the process (a resource built again, as every run builds it) reads the
    # same server.
    with sources(source_url)["weather_feed"].serve() as second:
        assert second == first
        # The database re-created at the same path (a fresh replay) is read as it is now.
        path = source_url.removeprefix("sqlite:///")
        shutil.copy(source_template, path + ".new")
        replay.advance(f"sqlite:///{path}.new", 1)
        source_execute(
            f"sqlite:///{path}.new", "DELETE FROM weather_observations WHERE origin = 'JFK'"
        )
        shutil.move(path + ".new", path)
        after = httpx.get(f"{second}/v1/observations", params={"limit": 5000}).json()
    now = source_query(source_url, "SELECT now FROM replay_clock")[0][0]
    expected = source_query(
        source_url, f"SELECT count(*) FROM weather_observations WHERE time_hour <= '{now}'"
    )[0][0]
    assert len(after["observations"]) == expected
    assert "JFK" not in {r["origin"] for r in after["observations"]}
    assert "JFK" in {r["origin"] for r in before["observations"]}
