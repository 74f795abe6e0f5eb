"""Run the Procfile's processes one by one (tests: kill or restart a single one; honcho, used by
`make prod-up`, stops the whole stack when any process exits)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mlops_platform.deploy.config import PROCFILE, StackConfig


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """`name: command` lines, in order (comments and blank lines skipped)."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().replace("_", "").isalnum():
            raise ValueError(f"{path}:{number}: expected `name: command`, got {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    """Poll `check` until it returns something truthy; a clear error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a probe failing is "not yet"
            last_error = exc
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last_error})")


def http_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 200 <= reply.status < 300
    except OSError:
        return False


#: The webserver's view of its code locations (GraphQL).
_LOCATIONS_QUERY = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename } } } } }"
)


def locations_loaded(ui_url: str, timeout: float = 5.0) -> bool:
    """Whether the Dagster webserver at `ui_url` has every code location of its workspace
    loaded (not loading, not in error). Its `/server_info` answers before that: a webserver
    that started before the gRPC code location has the location in error until it reconnects,
    and a run submitted then finds no job."""
    body = json.dumps({"query": _LOCATIONS_QUERY}).encode()
    request = urllib.request.Request(
        f"{ui_url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            data = json.loads(reply.read())
    except (OSError, ValueError):
        return False
    workspace = (data.get("data") or {}).get("workspaceOrError") or {}
    entries = workspace.get("locationEntries") or []
    return bool(entries) and all(
        entry.get("loadStatus") == "LOADED"
        and (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
        for entry in entries
    )


class Supervisor:
    """Each process in its own session (a kill reaches its children), output to a log file."""

    def __init__(
        self, config: StackConfig, procfile: Path = PROCFILE, extra_env: dict | None = None
    ) -> None:
        self.config = config
        self.commands = read_procfile(procfile)
        self.processes: dict[str, subprocess.Popen] = {}
        self.log_dir = config.run_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)
        self.env = os.environ | config.environment() | (extra_env or {})
        self.env["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    def start(self, *names: str) -> None:
        for name in names or tuple(self.commands):
            log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            self.processes[name] = subprocess.Popen(
                ["bash", "-c", f"exec {self.commands[name]}"],
                cwd=PROCFILE.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def signal(self, name: str, sig: int) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL what is left of the process group after `timeout`."""
        process = self.processes.get(name)
        if process is None:
            return
        self.signal(name, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # children that outlived their parent
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group at once: a crash, not a shutdown."""
        self.signal(name, signal.SIGKILL)
        self.processes[name].wait(10)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.processes.items()}

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")
