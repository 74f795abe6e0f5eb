"""The deployment descriptions agree: the Procfile (run here), the compose file and the Helm
values (not run here), deploy/dagster.yaml, deploy/celery.yaml and .env.example name the same
processes, commands, ports and variables. Pure file checks: no service needed."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import yaml

from mlops_platform.deploy.config import DEPLOY_DIR, PROJECT_ROOT, StackConfig, render
from mlops_platform.deploy.queues import CELERY_SETTINGS, CPU_QUEUE, QUEUE_TAG, WAREHOUSE_QUEUE
from mlops_platform.deploy.supervisor import read_procfile

PROCFILE = read_procfile()
COMPOSE = yaml.safe_load((DEPLOY_DIR / "compose.yaml").read_text())
HELM = yaml.safe_load((DEPLOY_DIR / "helm-values.yaml").read_text())
INSTANCE = yaml.safe_load((DEPLOY_DIR / "dagster.yaml").read_text())
VARIABLE = re.compile(r"\$\$?\{?([A-Z][A-Z0-9_]*)")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


ENV = _env_example()


def _compose_command(service: str) -> str:
    """The compose service's command as the Procfile writes it (`$$X` is compose for `$X`)."""
    shell = COMPOSE["services"][service]["command"][-1]
    command = shell.split("&& ")[-1].removeprefix("exec ")
    return command.replace("$$", "$")


def test_every_procfile_process_runs_in_compose_with_the_same_command():
    assert set(PROCFILE) == set(COMPOSE["services"])
    for name, command in PROCFILE.items():
        assert _compose_command(name) == command, name


def test_every_variable_is_in_env_example():
    used = set()
    for command in PROCFILE.values():
        used |= set(VARIABLE.findall(command))
    for service in COMPOSE["services"].values():
        used |= set(service["environment"])
    helm_env = [
        *HELM["dagsterWebserver"]["env"],
        *HELM["dagster-user-deployments"]["deployments"][0]["env"],
        *HELM["runLauncher"]["config"]["celeryK8sRunLauncher"]["env"],
    ]
    used |= {item["name"] for item in helm_env}
    used |= {f.name.upper() for f in fields(StackConfig)}
    assert sorted(used - set(ENV)) == []


def test_ports_agree_with_env_example():
    defaults = {f.name.upper(): f.default for f in fields(StackConfig) if f.name.endswith("port")}
    for name, default in defaults.items():
        assert ENV[name] == str(default), name
    env = COMPOSE["services"]["code_location"]["environment"]
    for name in defaults:
        assert env[name] == ENV[name], name
    published = {
        "webserver": "MLOPS_DAGSTER_UI_PORT",
        "mlflow": "MLOPS_MLFLOW_PORT",
        "serving_1": "MLOPS_SERVING_1_PORT",
        "serving_2": "MLOPS_SERVING_2_PORT",
        "code_location": "MLOPS_CODE_LOCATION_PORT",
    }
    for service, variable in published.items():
        spec = COMPOSE["services"][service]
        ports = [p.split(":")[-1] for p in spec.get("ports", [])] + spec.get("expose", [])
        assert ENV[variable] in ports, service
    nginx_ports = [p.split(":")[-1] for p in COMPOSE["services"]["nginx"]["ports"]]
    assert sorted(nginx_ports) == sorted(
        [ENV["MLOPS_SERVING_PORT"], ENV["MLOPS_REGISTRY_READONLY_PORT"]]
    )
    code = HELM["dagster-user-deployments"]["deployments"][0]
    assert str(code["port"]) == ENV["MLOPS_CODE_LOCATION_PORT"]
    assert str(HELM["dagsterWebserver"]["service"]["port"]) == ENV["MLOPS_DAGSTER_UI_PORT"]


def test_helm_mirrors_the_dagster_processes():
    code = HELM["dagster-user-deployments"]["deployments"][0]
    assert " ".join(code["dagsterApiGrpcArgs"]) in PROCFILE["code_location"]
    queues: dict[str, int] = {}
    for name, command in PROCFILE.items():
        if name.startswith("worker_"):
            (queue,) = re.findall(r" -q (\w+)", command)
            queues[queue] = queues.get(queue, 0) + 1
    assert queues == {WAREHOUSE_QUEUE: 2, CPU_QUEUE: 1}
    celery = HELM["runLauncher"]["config"]["celeryK8sRunLauncher"]
    assert {q["name"]: q["replicaCount"] for q in celery["workerQueues"]} == queues
    assert celery["configSource"] == CELERY_SETTINGS
    coordinator = HELM["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = INSTANCE["concurrency"]["runs"]
    assert coordinator["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert coordinator["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    retries = HELM["dagsterDaemon"]["runRetries"]
    assert (retries["enabled"], retries["maxRetries"]) == (
        INSTANCE["run_retries"]["enabled"],
        INSTANCE["run_retries"]["max_retries"],
    )
    assert INSTANCE["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert INSTANCE["storage"]["postgres"]["postgres_url"] == {"env": "MLOPS_DAGSTER_PG_URL"}


def test_workers_and_executor_share_the_celery_settings():
    workers = yaml.safe_load((DEPLOY_DIR / "celery.yaml").read_text())["execution"]["config"]
    assert workers["config_source"] == CELERY_SETTINGS
    assert workers["broker"] == {"env": "MLOPS_CELERY_BROKER"}


def test_production_executor_routes_training_to_the_cpu_queue(monkeypatch):
    import dagster as dg

    from mlops_platform.definitions import spec_definitions
    from mlops_platform.profiles import executor_for
    from mlops_platform.specs import load_spec

    assert executor_for("local") is None
    assert executor_for("production").name == "celery_production"
    defs = spec_definitions([load_spec("flight_delay")])

    def queues(assets: dg.AssetsDefinition) -> set:
        """The queue tag of each op the asset runs (a graph asset's ops each have their own)."""
        node = assets.node_def
        ops = [node] if isinstance(node, dg.OpDefinition) else list(node.iterate_op_defs())
        return {op.tags.get(QUEUE_TAG) for op in ops}

    found = {
        key.to_user_string(): queues(assets)
        for assets in defs.assets
        if isinstance(assets, dg.AssetsDefinition)
        for key in assets.keys
    }
    assert found["flight_delay/model"] == {CPU_QUEUE}
    assert found["flight_delay/features"] == {None}  # default queue: warehouse
    assert found["flight_delay/scores"] == {None}  # plan, the chunks and the summary


def test_nginx_template_renders_every_placeholder_and_refuses_missing_ones():
    template = (DEPLOY_DIR / "nginx.conf.template").read_text()
    config = StackConfig(
        mlops_data_dir="/d",
        dagster_home="/d/h",
        mlops_deploy_run_dir="/d/run",
        mlops_dagster_pg_url="postgresql+psycopg2://x/a",
        mlops_mlflow_backend_uri="postgresql://x/b",
        mlops_warehouse_url="postgresql://x/c",
        mlops_source_url="postgresql://x/c",
    )
    rendered = render(template, config.environment() | {"NGINX_USER": "nobody"})
    assert "{{" not in rendered
    assert "limit_except GET HEAD { deny all; }" in rendered
    assert "server 127.0.0.1:8081" in rendered and "server 127.0.0.1:8082" in rendered
    with pytest.raises(KeyError, match="MLOPS_SERVING_PORT"):
        render("listen {{MLOPS_SERVING_PORT}};", {})


@pytest.mark.parametrize(
    ("text", "error"),
    [("web: run\n", None), ("# c\n\nweb: run\n", None), ("no colon here\n", "expected")],
)
def test_procfile_parsing(tmp_path, text, error):
    path = tmp_path / "Procfile"
    path.write_text(text)
    if error:
        with pytest.raises(ValueError, match=error):
            read_procfile(path)
    else:
        assert read_procfile(path) == {"web": "run"}


def test_the_production_executor_looks_at_its_steps_every_poll_interval():
    """The executor shortens dagster-celery's one-second sleep between looks at the steps'
    results by setting the module constant its loop reads; if dagster-celery renames it or
    stops sleeping on it, the setting would silently do nothing, so this fails instead."""
    import inspect

    from dagster._core.execution.retries import RetryMode
    from dagster_celery import core_execution_loop

    from mlops_platform.deploy.executor import POLL_SECONDS, _prompt_executor_class
    from mlops_platform.profiles import executor_for

    source = inspect.getsource(core_execution_loop.core_celery_execution_loop)
    assert "time.sleep(TICK_SECONDS)" in source
    definition = executor_for("production")
    assert definition.name == "celery_production"
    executor = _prompt_executor_class()(
        retries=RetryMode.ENABLED, broker="pyamqp://guest@127.0.0.1//", backend="rpc://"
    )
    before = core_execution_loop.TICK_SECONDS
    try:
        loop = executor.execute(plan_context=None, execution_plan=None)  # a generator: not run
        assert inspect.isgenerator(loop)
        assert core_execution_loop.TICK_SECONDS == POLL_SECONDS < 1
    finally:
        core_execution_loop.TICK_SECONDS = before
