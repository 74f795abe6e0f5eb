"""`python -m mlops_platform.deploy.stack up|down|status`: the production stack on this machine.

`up` creates what the stack needs (databases, Dagster's instance tables),
writes the generated configuration, starts the Procfile with honcho in the background, waits
for every endpoint to answer and prints where each is. `down` stops it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlops_platform.deploy.config import PROCFILE, StackConfig, from_environment, write_files
from mlops_platform.deploy.supervisor import http_ok, locations_loaded, wait_until


def _say(text: str) -> None:
    """Console output of this command (the endpoints are its point)."""
    sys.stdout.write(text + "\n")


def create_databases(config: StackConfig) -> None:
    """Each database the stack names, created on its server if missing."""
    import sqlalchemy as sa

    for url in {
        config.mlops_dagster_pg_url,
        config.mlops_mlflow_backend_uri,
        config.mlops_warehouse_url,
    }:
        parsed = sa.engine.make_url(url)
        engine = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
        engine.dispose()


def init_dagster_storage(config: StackConfig) -> None:
    """Create the instance tables once, before several processes would race to."""
    env = os.environ | config.environment()
    code = "import dagster as dg; dg.DagsterInstance.get().get_runs(limit=1)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


def provision_signing_key(config: StackConfig) -> None:
    """The operator's step: the pipeline's signing key pair (production never mints one)."""
    from mlops_platform.registry.signing import generate_key_pair

    private = config.signing_key
    if not private.exists():
        generate_key_pair(private)


def prepare(config: StackConfig) -> None:
    """Databases, generated files, the signing key and Dagster's tables. The source systems are
    not the platform's: here the simulator provides them (`python -m simulator.stack up`)."""
    create_databases(config)
    write_files(config)
    provision_signing_key(config)
    init_dagster_storage(config)


def healthy(config: StackConfig) -> dict[str, bool]:
    base = "http://127.0.0.1"
    return {
        "mlflow": http_ok(f"{config.mlflow_uri}/health"),
        "registry (read-only)": http_ok(f"{config.registry_readonly_uri}/health"),
        "dagster webserver": http_ok(f"{base}:{config.mlops_dagster_ui_port}/server_info"),
        "dagster code location (loaded in the webserver)": locations_loaded(
            f"{base}:{config.mlops_dagster_ui_port}"
        ),
        "serving replica 1": http_ok(f"{base}:{config.mlops_serving_1_port}/v2/health/live"),
        "serving replica 2": http_ok(f"{base}:{config.mlops_serving_2_port}/v2/health/live"),
        "nginx": http_ok(f"{base}:{config.mlops_serving_port}/nginx-health"),
        "feed": http_ok(f"{config.feed_url}/health"),
    }


def _pid_file(config: StackConfig) -> Path:
    return config.run_dir / "honcho.pid"


def up(config: StackConfig, timeout: float) -> None:
    prepare(config)
    if _running(config):
        raise SystemExit(f"the stack already runs (pid file {_pid_file(config)}): make prod-down")
    env = os.environ | config.environment()
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log = open(config.run_dir / "honcho.log", "ab")  # noqa: SIM115 - owned by honcho
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", str(PROCFILE), "start", "--no-prefix"],
        cwd=PROCFILE.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _pid_file(config).write_text(str(honcho.pid))
    started = time.monotonic()
    try:
        wait_until(
            lambda: all(healthy(config).values()) or honcho.poll() is not None, timeout, "the stack"
        )
    except TimeoutError:
        down(config)
        raise
    if honcho.poll() is not None:
        raise SystemExit(f"honcho exited: see {config.run_dir / 'honcho.log'}")
    _say(f"production stack up in {time.monotonic() - started:.0f} s (honcho pid {honcho.pid})")
    for what, where in config.endpoints().items():
        _say(f"  {what:40} {where}")
    _say(f"  logs: {config.run_dir / 'honcho.log'}; stop with `make prod-down`")


def _running(config: StackConfig) -> int | None:
    try:
        pid = int(_pid_file(config).read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def down(config: StackConfig) -> None:
    pid = _running(config)
    if pid is None:
        _say("the production stack is not running")
        return
    os.killpg(pid, signal.SIGTERM)  # honcho forwards it to every process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _running(config):
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _pid_file(config).unlink(missing_ok=True)
    _say("production stack stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "render"])
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    config = from_environment()
    if args.action == "up":
        up(config, args.timeout)
    elif args.action == "down":
        down(config)
    elif args.action == "render":  # containers: the generated files only (deploy/compose.yaml)
        write_files(config)
    else:
        for what, ok in healthy(config).items():
            _say(f"  {what:30} {'up' if ok else 'DOWN'}")


if __name__ == "__main__":
    main()
