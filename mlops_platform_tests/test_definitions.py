"""The whole code location loads, fast, with the asset keys, checks and jobs we expect; it is
assembled per package, with no preview API; the platform never imports the simulator, and
serving never imports Dagster."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from mlops_platform.settings import PROJECT_ROOT

EXPECTED_ASSETS = {
    *(f"landing/{t}" for t in ("airlines", "airports", "flights", "planes", "weather")),
    "raw/airlines",
    "raw/airports",
    "raw/flights",
    "raw/planes",
    "raw/weather",
    "source/flight_ops",
    "source/weather_feed",
    "flight_delay/features",
    "flight_delay/model",
    "flight_delay/registry",
    "flight_delay/scores",
    "flight_delay/drift",
    "flight_delay/performance",
    "flight_delay/deploy_guard",
}


def test_definitions_snapshot():
    from mlops_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    for key in graph.get_all_asset_keys():
        # Every asset: its domain's group, owners and tag, and what it is built with (kinds).
        node = graph.get(key)
        assert node.group_name == "flights", key
        assert node.owners == ["team:flight-delay-ml"], key
        assert node.tags["domain"] == "flights", key
        assert node.kinds, key
        if key.path[0] == "flight_delay":  # a stage: its key's last part, also a tag
            assert node.tags["stage"] == key.path[-1] and node.tags["spec"] == "flight_delay"
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    raw_tables = ("airlines", "airports", "flights", "planes", "weather")
    warnings = {
        ("flight_delay/drift", "drift_share"),
        ("flight_delay/performance", "live_performance"),
    }
    assert checks == {
        *((f"raw/{t}", "contract") for t in raw_tables),
        ("flight_delay/model", "evaluation_gate"),
        *warnings,
    }
    for key in graph.asset_check_keys:
        # Contracts and the gate stop what follows; the monitoring checks only warn.
        blocking = (key.asset_key.to_user_string(), key.name) not in warnings
        assert graph.get_check_spec(key).blocking is blocking, key
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest",
        "train_flight_delay",
        "approve_model",
        "rollback_model",
        "daily_flight_delay",
    }
    for name in ("retrain_flight_delay", "alert_on_run_failure", "daily_cycle_flight_delay"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    ingest = defs.resolve_job_def("ingest")
    assert ingest.asset_layer.executable_asset_keys >= {
        dg.AssetKey(["raw", t]) for t in ("flights", "weather")
    }
    # One run per replay day: landing and the raw tables (with their contracts), features, scores
    # and the monitoring assets, in asset-graph order; training is not part of it.
    daily = defs.resolve_job_def("daily_flight_delay")
    assert {k.to_user_string() for k in daily.asset_layer.executable_asset_keys} == {
        *(f"landing/{t}" for t in raw_tables),
        *(f"raw/{t}" for t in raw_tables),
        "flight_delay/features",
        "flight_delay/scores",
        "flight_delay/drift",
        "flight_delay/performance",
        "flight_delay/deploy_guard",
    }
    assert daily.partitions_def is not None


def test_dagster_validates_the_location(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "definitions",
            "validate",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a hang, not a speed budget (the machine may be busy)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # How fast it loads is measured by `make bench-load` (target 5 s), not asserted here.


def test_production_profile_reads_its_settings_from_the_environment(monkeypatch):
    from mlops_platform.profiles import resources_for
    from mlops_platform.warehouse.resources import PostgresWarehouse

    resources = resources_for("production")
    assert isinstance(resources["warehouse"], PostgresWarehouse)
    monkeypatch.setenv("MLOPS_PROFILE", "staging")
    import pytest

    from mlops_platform.settings import active_profile

    with pytest.raises(ValueError, match="MLOPS_PROFILE='staging'"):
        active_profile()


def test_the_simulator_location_is_the_platform_plus_the_replay_clock_job():
    from mlops_platform.definitions import defs as platform
    from simulator.definitions import defs as simulated

    keys = simulated.resolve_asset_graph().get_all_asset_keys()
    assert keys == platform.resolve_asset_graph().get_all_asset_keys()
    jobs = {job.name for job in simulated.resolve_all_job_defs()}
    assert jobs - {job.name for job in platform.resolve_all_job_defs()} == {"advance_clock"}
    assert type(simulated.resources["weather_feed"]).__name__ == "ReplayWeatherFeed"
    assert type(platform.resources["weather_feed"]).__name__ == "SourceFeed"


def test_production_runs_the_daily_cycle_on_a_wall_clock_schedule(monkeypatch):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from mlops_platform.clock import WallClock
    from mlops_platform.definitions import build_definitions
    from mlops_platform.profiles import clock_for

    monkeypatch.delenv("MLOPS_CLOCK_URL", raising=False)
    assert isinstance(clock_for("production"), WallClock)
    defs = build_definitions(profile="production")
    assert not [s for s in defs.sensors if s.name == "daily_cycle_flight_delay"]
    schedule = defs.resolve_schedule_def("daily_cycle_flight_delay")
    daily = defs.resolve_job_def("daily_flight_delay")
    assert schedule.cron_schedule == "15 0 * * *"
    assert schedule.execution_timezone == daily.partitions_def.timezone
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    repo = defs.get_repository_def()
    tz = ZoneInfo(schedule.execution_timezone)
    at = dt.datetime(2013, 3, 5, 0, 15, tzinfo=tz)
    with dg.build_schedule_context(scheduled_execution_time=at, repository_def=repo) as context:
        data = schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.partition_key == "2013-03-04"
    assert request.tags["mlops/cycle_day"] == "2013-03-04"
    # Outside the partitions (after the last day), the schedule skips and says why.
    later = at.replace(year=2030)
    with dg.build_schedule_context(scheduled_execution_time=later, repository_def=repo) as context:
        data = schedule.evaluate_tick(context)
    assert not data.run_requests and "outside the partitions" in data.skip_message


def test_a_replayed_production_stack_follows_its_clock_table(monkeypatch):
    from mlops_platform.clock import TableClock
    from mlops_platform.definitions import build_definitions
    from mlops_platform.profiles import clock_for

    monkeypatch.setenv("MLOPS_CLOCK_URL", "sqlite:///nowhere.sqlite")
    assert isinstance(clock_for("production"), TableClock)
    defs = build_definitions(profile="production")
    assert defs.resolve_sensor_def("daily_cycle_flight_delay")
    assert not [s for s in defs.schedules if s.name == "daily_cycle_flight_delay"]


def _imports(path, top_level_only: bool = False) -> set[str]:
    """Every module a file imports: at any depth (function bodies included), or only what
    importing the file itself runs (module level, outside `if TYPE_CHECKING:`)."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    if top_level_only:
        nodes = [
            n
            for n in tree.body
            if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        ]
        stack, nodes = nodes, []
        while stack:  # the module's statements, not the bodies of its functions
            node = stack.pop()
            nodes.append(node)
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                stack += list(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            found |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return found


def test_production_code_never_imports_the_simulator():
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(
            m for m in _imports(path) if m == "simulator" or m.startswith("simulator.")
        )
        for path in (PROJECT_ROOT / "mlops_platform").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_preview_api_and_no_silenced_warnings():
    code = (
        "import warnings, dagster as dg\n"
        "warnings.simplefilter('error', dg.PreviewWarning)\n"
        "import mlops_platform.definitions, simulator.definitions\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for path in (PROJECT_ROOT / "mlops_platform").rglob("*.py"):
        text = path.read_text()
        assert "PreviewWarning" not in text and "load_definitions_from_modules" not in text, path


def test_serving_never_imports_dagster():
    """Statically: every import in serving's modules (lazy ones included) and what importing
    each module they reach runs; and for real: the app is built on the local profile with no
    `dagster` in `sys.modules`."""
    serving = PROJECT_ROOT / "mlops_platform" / "serving"
    todo = [(f"mlops_platform.serving.{p.stem}", False) for p in serving.glob("*.py")]
    seen: set[str] = set()
    while todo:
        module, top_level_only = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        base = PROJECT_ROOT / module.replace(".", "/")
        source = (
            base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        )
        if not source.exists():
            continue
        parts = module.split(".")
        # Importing a module runs its packages' __init__ first.
        todo += [(".".join(parts[:i]), True) for i in range(2, len(parts))]
        for imported in _imports(source, top_level_only):
            assert not imported.startswith("dagster"), (module, imported)
            if imported.startswith("mlops_platform"):
                todo.append((imported, not imported.startswith("mlops_platform.serving")))
    code = (
        "import sys\n"
        "from mlops_platform.serving.app import create_app\n"
        "create_app()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('dagster'))\n"
        "assert not loaded, loaded[:5]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_metadata_numbers_are_rounded_for_reading():
    import numpy as np

    from mlops_platform.metadata import rounded

    md = dg.MetadataValue.json({"x": 0.123456})
    out = rounded(
        {"auc": 0.6402955320703536, "np": np.float64(1.23456789), "nan": float("nan"),
         "inf": float("inf"), "rows": 5105, "ok": True, "name": "v1", "json": md}
    )  # fmt: skip
    assert out["auc"] == 0.6403 and out["np"] == 1.2346 and type(out["np"]) is float
    assert out["nan"] != out["nan"] and out["inf"] == float("inf")
    assert out["rows"] == 5105 and out["ok"] is True and out["name"] == "v1" and out["json"] is md
