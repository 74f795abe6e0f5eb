"""The rainfall domain: its source system (replay clock, late rain reports), its feature
functions and spec, and the concept drift its replay relies on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from simulator.rainfall import replay, tables
from simulator.rainfall.data import CHANGE_ROW, FIRST_DAY, MEASUREMENTS, read_days


@pytest.fixture(scope="module")
def days() -> pd.DataFrame:
    return read_days()


def _rows(url: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.select(tables.daily_summary), conn)
    finally:
        engine.dispose()


def test_every_row_is_one_day_in_order(days):
    assert len(days) == 18_159
    assert days["obs_date"].iloc[0] == FIRST_DAY == dt.date(1949, 1, 1)
    assert days["obs_date"].iloc[-1] == dt.date(1998, 9, 19)
    assert (pd.Series(pd.to_datetime(days["obs_date"])).diff().dropna() == pd.Timedelta("1D")).all()
    assert int(days["rain"].sum()) == 5_698  # 31% positive, as Elwell & Polikar report


def test_stable_years_are_in_calendar_phase(days):
    """The dates given are right where it matters: before the change, every block of the data
    has its coldest weeks in Dec-Feb and its warmest in Jun-Aug."""
    stable = days.iloc[:CHANGE_ROW]
    for block in np.array_split(stable.index, 3):
        part = stable.loc[block]
        doy = pd.to_datetime(part["obs_date"]).dt.dayofyear
        season = part["temperature"].groupby(doy).mean().rolling(15, center=True).mean()
        assert season.idxmin() <= 60 or season.idxmin() >= 335
        assert 152 <= season.idxmax() <= 243


def test_replay_publishes_the_day_then_its_rain_report(tmp_path, days):
    url = f"sqlite:///{tmp_path / 'station.sqlite'}"
    start = replay.create_source(url, days=days.head(5))
    assert start.now == dt.datetime(1949, 1, 1) and start.released == 0
    assert _rows(url).empty

    summary = replay.set_clock(url, dt.datetime(1949, 1, 1, 23))
    rows = _rows(url)
    assert (summary.released, summary.labels) == (1, 0)
    assert rows["rain"].isna().all() and list(rows["obs_date"].astype(str)) == ["1949-01-01"]
    assert (rows["updated_at"] == pd.Timestamp("1949-01-01 23:00")).all()

    report = replay.set_clock(url, dt.datetime(1949, 1, 2, 9))
    rows = _rows(url).set_index("obs_date")
    assert (report.released, report.labels) == (0, 1)
    first = rows.iloc[0]
    assert first["rain"] == days["rain"].iloc[0]
    assert first["updated_at"] == pd.Timestamp("1949-01-02 09:00")
    assert first[list(MEASUREMENTS)].to_numpy() == pytest.approx(
        days.loc[0, list(MEASUREMENTS)].to_numpy(dtype=float)
    )

    later = replay.advance(url, 30)
    assert (later.released, later.labels) == (4, 4)
    assert _rows(url)["rain"].notna().all()
    with pytest.raises(ValueError, match="only moves forward"):
        replay.set_clock(url, dt.datetime(1949, 1, 1))
    assert replay.read_clock(url).now == later.now


def test_platform_reads_the_station_clock(tmp_path, days):
    from mlops_platform.clock import TableClock

    url = f"sqlite:///{tmp_path / 'station.sqlite'}"
    replay.create_source(url, start=dt.datetime(1960, 5, 1), days=days.head(3))
    assert TableClock(url=url).now() == dt.datetime(1960, 5, 1)


def test_changes_never_bridge_a_gap():
    from mlops_platform.domains.rainfall.features import changes, measurements

    frame = pd.DataFrame(
        {
            "station": ["a", "a", "a", "b"],
            "obs_date": pd.to_datetime(["2000-01-01", "2000-01-02", "2000-01-05", "2000-01-02"]),
            **{name: [1.0, 3.0, 10.0, 7.0] for name in MEASUREMENTS},
        }
    )
    delta = changes(frame)
    assert delta["temperature_change"].tolist()[1] == 2.0
    assert np.isnan(delta["temperature_change"].tolist()[0])  # the first day read
    assert np.isnan(delta["temperature_change"].tolist()[2])  # two days missing before it
    assert np.isnan(delta["temperature_change"].tolist()[3])  # another station's first day
    assert list(measurements(frame).columns) == list(MEASUREMENTS)


def test_feature_functions_read_only_what_they_declare(days):
    """Each function run on its declared columns alone gives what it gives on the whole table
    (so the declaration the privacy check reads is the truth), and none reads `rain`."""
    from mlops_platform.domains.rainfall import features

    frame = features.base_frame({"daily_summary": days.head(60)})
    for name, function in features.FEATURE_FUNCTIONS.items():
        declared = list(features.FEATURE_INPUTS[name]["daily_summary"])
        assert "rain" not in declared
        pd.testing.assert_frame_equal(function(frame[declared]), function(frame))


def test_spec_and_declaration_load():
    from mlops_platform.domains import domain_for, load_domain
    from mlops_platform.specs import load_spec

    spec = load_spec("rain")
    domain = domain_for(spec)
    assert domain == load_domain("rainfall")
    assert domain.entity_key == ("station", "obs_date")
    assert "rain" in domain.leakage_columns and "rain" not in spec.features.columns


def test_the_data_has_the_concept_drift_the_replay_relies_on(days):
    """A model of the first 5,000 days ranks rainy days well in every 1,000-day block before
    day 12,000 and worse than chance in every block after it: the concept changes."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    x, y = days[list(MEASUREMENTS)], days["rain"]
    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(random_state=0).fit(x[:5000], y[:5000])
        scores = model.predict_proba(x)[:, 1]
    blocks = {
        start: roc_auc_score(y[start : start + 1000], scores[start : start + 1000])
        for start in range(5000, 18_000, 1000)
    }
    assert all(0.8 < auc for start, auc in blocks.items() if start < CHANGE_ROW)
    assert all(auc < 0.5 for start, auc in blocks.items() if start >= CHANGE_ROW)
