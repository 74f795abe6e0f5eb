"""The production stack's settings (ports, URLs, directories) and the files made from them.

Everything comes from the environment (names in .env.example) with local defaults, so the same
Procfile runs the stack here on fixed ports (`make prod-up`) and in tests on free ones.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
from dataclasses import dataclass, fields
from pathlib import Path

from mlops_platform.settings import PROJECT_ROOT, data_dir

DEPLOY_DIR = PROJECT_ROOT / "deploy"
PROCFILE = PROJECT_ROOT / "Procfile"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
#: dagster-postgres binds NOTIFY payloads as parameters, which only psycopg2 accepts (psycopg 3,
#: SQLAlchemy 2.1's default for `postgresql://`, sends them server-side and fails): name it.
PG_DAGSTER_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"


@dataclass
class StackConfig:
    """One value per variable the Procfile reads (field name = variable name, lower case)."""

    mlops_data_dir: str
    dagster_home: str
    mlops_deploy_run_dir: str
    mlops_dagster_pg_url: str
    mlops_mlflow_backend_uri: str
    mlops_warehouse_url: str
    mlops_source_url: str
    mlops_celery_broker: str = "pyamqp://guest:guest@127.0.0.1:5672//"
    #: Where servers listen, and where each is reached (service names in compose/Kubernetes).
    mlops_bind_host: str = "127.0.0.1"
    mlops_mlflow_host: str = "127.0.0.1"
    mlops_serving_1_host: str = "127.0.0.1"
    mlops_serving_2_host: str = "127.0.0.1"
    mlops_nginx_host: str = "127.0.0.1"
    mlops_code_location_host: str = "127.0.0.1"
    mlops_code_location_port: int = 4266
    mlops_dagster_ui_port: int = 3000
    mlops_mlflow_port: int = 5000
    mlops_registry_readonly_port: int = 5001
    mlops_serving_port: int = 8080
    mlops_serving_1_port: int = 8081
    mlops_serving_2_port: int = 8082
    #: The HTTP feed the stack ingests from (here the simulator's, a Procfile process).
    mlops_feed_host: str = "127.0.0.1"
    mlops_feed_port: int = 8765

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.mlops_mlflow_host}:{self.mlops_mlflow_port}"

    @property
    def feed_url(self) -> str:
        """The stack's feed process; a declared feed URL variable that is set wins."""
        configured = [os.environ[n] for n in feed_url_variables() if os.environ.get(n)]
        return (
            configured[0] if configured else f"http://{self.mlops_feed_host}:{self.mlops_feed_port}"
        )

    @property
    def registry_readonly_uri(self) -> str:
        return f"http://{self.mlops_nginx_host}:{self.mlops_registry_readonly_port}"

    @property
    def run_dir(self) -> Path:
        return Path(self.mlops_deploy_run_dir)

    @property
    def signing_key(self) -> Path:
        """The pipeline's private key: `MLOPS_SIGNING_KEY`, or one provisioned in the run dir."""
        configured = os.environ.get("MLOPS_SIGNING_KEY")
        return Path(configured) if configured else self.run_dir / "signing" / "pipeline.key"

    def environment(self) -> dict[str, str]:
        """The variables every process of the stack gets (on top of the caller's)."""
        env = {f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}
        env.update(
            MLOPS_PROFILE="production",
            MLOPS_MLFLOW_TRACKING_URI=self.mlflow_uri,
            # Proxied artifacts: clients upload and download through the server over HTTP.
            MLOPS_MLFLOW_ARTIFACT_ROOT="mlflow-artifacts:/artifacts",
            MLOPS_REGISTRY_READONLY_URI=self.registry_readonly_uri,
            # Gated versions are signed with the provisioned key and verified with its .pub.
            MLOPS_SIGNING_KEY=str(self.signing_key.resolve()),
            MLOPS_SIGNING_PUBLIC_KEY=str(self.signing_key.resolve().with_suffix(".pub")),
            MLOPS_PREDICTION_LOG_DIR=str(Path(self.mlops_data_dir) / "serving"),
            # This stack replays history: its clock is the source's replay clock, so the daily
            # cycle is the sensor that follows it (unset, production runs on the wall clock).
            MLOPS_CLOCK_URL=os.environ.get("MLOPS_CLOCK_URL") or self.mlops_source_url,
            MLOPS_ALERT_WEBHOOK_URL=os.environ.get("MLOPS_ALERT_WEBHOOK_URL", ""),
            DO_NOT_TRACK="true",
            MLFLOW_DISABLE_TELEMETRY="true",
            GX_ANALYTICS_ENABLED="false",
            RUNTIME__DLTHUB_TELEMETRY="false",
            DAGSTER_DISABLE_TELEMETRY="true",
            # One BLAS/OpenMP thread per process: the workers already are the parallelism.
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        # The declared feeds' URLs: as set, else the stack's own feed process.
        env.update({name: os.environ.get(name) or self.feed_url for name in feed_url_variables()})
        return env

    def endpoints(self) -> dict[str, str]:
        return {
            "Dagster UI": f"http://127.0.0.1:{self.mlops_dagster_ui_port}",
            "Dagster code location (gRPC)": f"127.0.0.1:{self.mlops_code_location_port}",
            "MLflow UI and tracking server": self.mlflow_uri,
            "MLflow registry, read-only (serving)": self.registry_readonly_uri,
            "Serving API (nginx, 2 replicas)": f"http://127.0.0.1:{self.mlops_serving_port}",
            "Serving replica 1": f"http://127.0.0.1:{self.mlops_serving_1_port}",
            "Serving replica 2": f"http://127.0.0.1:{self.mlops_serving_2_port}",
            "Celery broker (RabbitMQ)": self.mlops_celery_broker.split("@")[-1],
        }


def feed_url_variables() -> list[str]:
    """The environment variables the enabled domains' HTTP feeds take their URLs from."""
    from mlops_platform.domains import enabled_domains
    from mlops_platform.domains.schema import RestSource

    return [
        source.url_env
        for domain in enabled_domains()
        for source in domain.sources.values()
        if isinstance(source, RestSource)
    ]


def from_environment() -> StackConfig:
    """Settings from the environment, defaulting to databases `mlops_*` on the local server."""
    root = data_dir()
    values = {}
    for f in fields(StackConfig):
        if f.name.upper() in os.environ and os.environ[f.name.upper()]:
            values[f.name] = (
                type(f.default)(os.environ[f.name.upper()])
                if isinstance(f.default, int)
                else os.environ[f.name.upper()]
            )
    values.setdefault("mlops_data_dir", str(root))
    values.setdefault("dagster_home", str(root / "prod" / "dagster_home"))
    values.setdefault("mlops_deploy_run_dir", str(root / "prod"))
    values.setdefault("mlops_dagster_pg_url", f"{PG_DAGSTER_SERVER}/mlops_dagster")
    values.setdefault("mlops_mlflow_backend_uri", f"{PG_SERVER}/mlops_mlflow")
    values.setdefault("mlops_warehouse_url", f"{PG_SERVER}/mlops_warehouse")
    values.setdefault(
        "mlops_source_url", f"{PG_SERVER}/mlops_warehouse?options=-csearch_path%3Dsource_system"
    )
    return StackConfig(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_free_ports(config: StackConfig) -> StackConfig:
    """The same stack on ports the OS says are free (tests)."""
    for f in fields(config):
        if f.name.endswith("_port"):
            setattr(config, f.name, free_port())
    return config


def render(template: str, values: dict[str, str]) -> str:
    """`{{NAME}}` placeholders (nginx has its own `$variables`); a missing one is an error."""
    import re

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for {{{{{name}}}}} in the nginx template")
        return values[name]

    return re.sub(r"\{\{([A-Z0-9_]+)\}\}", value, template)


def write_files(config: StackConfig) -> None:
    """DAGSTER_HOME/dagster.yaml, the workspace (the code location's gRPC port) and nginx.conf."""
    run_dir = config.run_dir
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
    home = Path(config.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    (run_dir / "workspace.yaml").write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {config.mlops_code_location_host}\n"
        f"      port: {config.mlops_code_location_port}\n"
        "      location_name: mlops_platform\n"
    )
    values = config.environment() | {"NGINX_USER": getpass.getuser()}
    template = (DEPLOY_DIR / "nginx.conf.template").read_text()
    (run_dir / "nginx.conf").write_text(render(template, values))
    (run_dir / "stack.env").write_text(
        "".join(f"{k}={v}\n" for k, v in sorted(config.environment().items()))
    )
