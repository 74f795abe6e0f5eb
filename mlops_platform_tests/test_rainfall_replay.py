"""Rainfall's replay, short: the same replay code as flights' year, on the weather station's
source system, month by month through the platform's own sensors (`daily_cycle_rain`,
`retrain_rain`) across the data's concept change (late 1981), on a slice of the data.

A retrain is launched by the sensor on what the monitoring saw after the change, its gate is
judged on the version it trained, the champion is promoted or kept accordingly (the audit log
says so), and the report compares the live champion with the static one year by year.
"""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import redirect_stdout
from io import StringIO

import dagster as dg
import pytest

from mlops_platform.registry.promotion import audit_log
from mlops_platform.specs import load_spec
from mlops_platform_tests.test_model_lifecycle import relaxed
from simulator.backtest import SUMMARY_FILE
from simulator.domains import RAINFALL
from simulator.rainfall.data import CHANGE_ROW, day_of_row


def short_windows(spec):
    """The rain spec judged on 60-day windows (so two monthly cycles fill one), with one
    retrain per episode for the length of the test."""
    drift = spec.drift.model_copy(
        update={"window_days": 60, "min_labelled_rows": 50, "cooldown_days": 365}
    )
    return spec.model_copy(update={"drift": drift})


SPEC = short_windows(relaxed(load_spec("rain")))
#: The slice: ~14 years before the first champion's clock, ten months after it.
FIRST_ROW = 6_600
WARMUP_END = dt.date(1981, 11, 1)
THROUGH = dt.date(1982, 1, 31)
MONTHS = ["1981-11", "1981-12", "1982-01"]
#: What the policy backtest beside the replay would write when it finishes, written by a
#: stand-in child (the real backtest walks 13 years: test_backtest.py tests it).
BACKTEST_SUMMARY = "rain: roc_auc per year (retrains)\n\n| year | static | default |\n"
BACKTEST = [
    sys.executable,
    "-c",
    "import os, pathlib; print('walking'); pathlib.Path(os.environ['MLOPS_DATA_DIR'], 'reports', "
    f"{SPEC.name!r}, {SUMMARY_FILE!r}).write_text({BACKTEST_SUMMARY!r})",
]


@pytest.fixture(scope="module")
def rain_replayed(tmp_path_factory):
    """A fresh rainfall replay: the station database from the sliced data, warm-up ingestion
    to 1981-11-01, the bootstrap champion, then three monthly cycles (Nov 1981 - Jan 1982),
    with a stand-in for the policy backtest beside it."""
    from mlops_platform.profiles import resources_for
    from simulator.definitions import build_simulated_definitions
    from simulator.rainfall.data import read_days
    from simulator.replay.replay import run_replay

    data_dir = tmp_path_factory.mktemp("rain_replay")
    days = read_days().iloc[FIRST_ROW : CHANGE_ROW + 300].reset_index(drop=True)
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv("MLOPS_DATA_DIR", str(data_dir))
        patch.setenv("MLOPS_MODEL_SPECS", SPEC.name)
        defs = build_simulated_definitions([SPEC], profile="local", partitions_until=None)
        printed = StringIO()
        with redirect_stdout(printed):
            status = run_replay(
                until=THROUGH + dt.timedelta(days=1),
                warmup_days=(WARMUP_END - RAINFALL.start).days,
                step=4_000,
                defs=defs,
                specs=[SPEC],
                instance=instance,
                report_name="test",
                source_days=days,
                backtest=BACKTEST,
            )
        resources = resources_for()
        yield status, instance, resources, printed.getvalue(), data_dir


def test_the_monthly_loop_runs_through_the_platforms_sensors(rain_replayed):
    status, instance, resources, printed, _ = rain_replayed
    assert status == 0, printed
    assert day_of_row(CHANGE_ROW) == dt.date(1981, 11, 9)  # inside the replayed months

    # One cycle run per month, for the month before the clock: partitions are months.
    cycle_runs = instance.get_runs(filters=dg.RunsFilter(tags={"mlops/cycle": SPEC.name}))
    done = [r for r in cycle_runs if r.status == dg.DagsterRunStatus.SUCCESS]
    assert sorted(r.tags["mlops/cycle_partition"] for r in done) == [f"{m}-01" for m in MONTHS]
    assert all(r.job_name == f"daily_{SPEC.name}" for r in cycle_runs)
    warehouse = resources["warehouse"]
    scored = warehouse.query(
        f"SELECT strftime(CAST(event_date AS DATE), '%Y-%m') AS m, count(*) AS n "
        f"FROM scores.{SPEC.name} GROUP BY m ORDER BY m"
    )
    assert list(scored["m"]) == MONTHS
    assert list(scored["n"]) == [30, 31, 31]  # every day of each month, once
    lines = [line for line in printed.splitlines() if line.startswith(("  1981-", "  1982-"))]
    cycles = [line for line in lines if "scored " in line]
    assert len(cycles) == len(MONTHS), printed
    assert "scored 1981-11: 30 station days by v1" in cycles[0]
    assert "ETA" in cycles[0] and "ETA" not in cycles[-1]  # progress while it runs


def test_a_retrain_after_the_change_is_judged_and_audited(rain_replayed):
    status, instance, resources, printed, data_dir = rain_replayed
    warehouse, registry = resources["warehouse"], resources["mlflow_registry"].registry()

    retrains = [
        r
        for r in instance.get_runs(filters=dg.RunsFilter(job_name=f"train_{SPEC.name}"))
        if "mlops/trigger" in r.tags
    ]
    assert retrains, printed
    first = min(retrains, key=lambda r: r.tags["mlops/monitored_day"])
    # Launched by the sensor on what monitoring saw after the concept changed.
    assert first.tags["dagster/sensor_name"] == f"retrain_{SPEC.name}"
    assert first.tags["mlops/monitored_day"] >= str(day_of_row(CHANGE_ROW).replace(day=1))
    assert first.tags["mlops/trigger"] in ("performance", "drift", "prediction_drift")
    assert first.tags["mlops/reason"]

    # Its gate was judged on the version it trained; promoted exactly when it passed.
    versions = {
        mv.tags.get("dagster_run_id"): str(mv.version)
        for mv in registry.client.search_model_versions(f"name = '{SPEC.name}'")
    }
    version = versions[first.run_id]
    tags = registry.version_tags(SPEC.name, version)
    assert tags["gate_passed"] in ("true", "false")
    log = audit_log(warehouse, SPEC.name)
    promoted = ((log["alias"] == "champion") & (log["to_version"] == version)).any()
    assert promoted == (tags["gate_passed"] == "true")

    # The report: live vs static (v1), year by year, with the retrain and the plot.
    folder = data_dir / "reports" / SPEC.name
    report = (folder / "test.md").read_text()
    assert "Static model: v1" in report and "## Year by year" in report
    assert "| 1981 |" in report and "| 1982 |" in report
    assert first.tags["mlops/monitored_day"] in report
    by_year = (folder / "test-by-year.csv").read_text().splitlines()
    assert by_year[0].startswith("period,rows,live,static") and len(by_year) == 3
    png = (folder / "test.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_backtest_beside_the_replay_follows_its_table_and_joins_its_report(rain_replayed):
    status, _, _, printed, data_dir = rain_replayed
    assert status == 0, printed
    folder = data_dir / "reports" / SPEC.name
    assert "walking" in (folder / "backtest.log").read_text()
    year_table = printed.index("| 1982 |")
    assert printed.index(BACKTEST_SUMMARY.splitlines()[0]) > year_table
    assert "policy backtest FAILED" not in printed
    report = (folder / "test.md").read_text()
    section = report[report.index("## The policy backtest of the same period") :]
    assert BACKTEST_SUMMARY.rstrip() in section and "(backtest.md)" in section
