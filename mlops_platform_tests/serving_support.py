"""What the serving tests share: a registry with two real models (trained once per session),
private copies of it per test, and a real server on it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from mlops_platform.http_server import BackgroundServer
from mlops_platform.model.version import GateSummary
from mlops_platform.registry.promotion import admit_challenger, promote
from mlops_platform.registry.signing import record_gate
from mlops_platform.registry.store import CHALLENGER, ModelRegistry
from mlops_platform.serving.app import create_app
from mlops_platform.serving.settings import ServingSettings
from mlops_platform.specs import load_spec
from mlops_platform.training.tracking import train_and_register
from mlops_platform.warehouse.resources import DuckDBWarehouse

_TRAINED: dict[str, Path] = {}

SPEC = load_spec("flight_delay")
TOKEN = "test-admin-token"
ROW = {
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "manufacturer": "BOEING",
    "distance": 1400,
    "sched_dep_hour": 5,
    "sched_arr_hour": 8,
    "day_of_week": 1,
    "plane_age": 14,
    "seats": 149,
    "engines": 2,
    "temp": 39.0,
    "dewp": 26.1,
    "humid": 59.4,
    "wind_dir": 270,
    "wind_speed": 10.4,
    "wind_gust": None,
    "precip": 0,
    "pressure": 1012.0,
    "visib": 10,
    "origin_late_1d": 0.18,
    "origin_late_7d": 0.21,
    "carrier_late_7d": 0.2,
    "dest_late_7d": 0.22,
}


@pytest.fixture(scope="module")
def models(golden, golden_features, tmp_path_factory) -> Path:
    """A registry with v1 (champion) and v2 (challenger, gate passed, not promoted), built
    once per session whichever serving test module asks first."""
    if "root" not in _TRAINED:
        _TRAINED["root"] = _train(golden, golden_features, tmp_path_factory.mktemp("served"))
    return _TRAINED["root"]


def _train(golden, golden_features, root: Path) -> Path:
    shutil.copy(golden / "mlflow.db", root / "mlflow.db")
    shutil.copy(golden / "warehouse.duckdb", root / "warehouse.duckdb")
    warehouse = DuckDBWarehouse(path=str(root / "warehouse.duckdb"))
    features = golden_features
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    for iterations in (80, 40):  # two different models
        params = {
            "learning_rate": 0.05,
            "max_iter": iterations,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 100,
            "l2_regularization": 1.0,
            "random_state": 13,
        }
        version = train_and_register(SPEC, features, registry, warehouse, params, "test").version
        # signed, as the gate does
        record_gate(registry, SPEC.name, version, GateSummary(passed=True, challenger=version))
        admit_challenger(registry, warehouse, SPEC.name, version, run_id="test")
        if iterations == 80:
            promote(
                registry, warehouse, SPEC.name, version, reason="test", actor="test", run_id="test"
            )
    assert registry.alias_version(SPEC.name, CHALLENGER) == "2"
    return root


@pytest.fixture()
def stack(models, tmp_path):
    """Private copies of the registry database and warehouse; artifacts are shared (read)."""
    shutil.copy(models / "mlflow.db", tmp_path / "mlflow.db")
    shutil.copy(models / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", str(models / "artifacts"))
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    return registry, warehouse, tmp_path


def serve(stack, **overrides):
    registry, warehouse, tmp = stack
    options = {
        "admin_token": TOKEN,
        "poll_seconds": 0.2,
        "retry_seconds": 0.2,
        "log_dir": str(tmp / "serving"),
        **overrides,
    }
    settings = ServingSettings(**options)
    return BackgroundServer(create_app(settings, registry, warehouse))


def wait_until(condition, what: str, timeout: float = 30, poll: float = 0.05):
    """Poll `condition()` until it is truthy and return its value; fail naming `what` after
    `timeout` seconds (a bound for a hang, not a speed budget)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout:.0f} s: {what}")
        time.sleep(poll)
    return found


def wait_ready(url: str, timeout: float = 60) -> None:
    def pings() -> bool:
        try:
            return httpx.get(f"{url}/ping").status_code == 200
        except httpx.ConnectError:
            return False  # not listening yet

    wait_until(pings, f"{url}/ping answering 200", timeout=timeout, poll=0.1)
