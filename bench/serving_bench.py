"""Benchmark: single-row scoring over HTTP, side by side in one run.

Three servers on the same champion model (or none, for the floor), each loaded for 20 s by wrk
(C, from Debian's packages) with 8 connections sending the same single-row MLflow scoring
request (`bench/invocation.lua`):
  platform  `mlops serve` (this project's service)
  mlflow    `mlflow models serve --env-manager local` on models:/flight_delay@champion
  floor     a no-op FastAPI endpoint on the same uvicorn stack (bench/noop_app.py)
Prints requests/s, p50/p99 latency, errors and peak RSS of each, and the ratios.
Target for the platform: >= 2,000 req/s, p99 < 25 ms, zero errors, RSS < 600 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def prepare(workdir: Path) -> dict:
    """A champion for flight_delay in a fresh local MLflow store (Jan 1 - Feb 10 data)."""
    from common import loaded_warehouse

    from mlops_platform.evaluation.run import run_gate
    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.registry.promotion import promote
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.specs import load_spec
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.tracking import train_and_register

    warehouse = loaded_warehouse(workdir, dt.datetime(2013, 2, 10))
    spec = load_spec("flight_delay")
    features = features_from_warehouse(warehouse, spec)
    registry = MLflowResource().registry()  # MLOPS_DATA_DIR points into workdir
    version = train_and_register(
        spec, features, registry, warehouse, Hyperparameters().as_dict(), "bench"
    )["version"]
    if not run_gate(spec, features, registry).passed:
        sys.exit("the benchmark's champion did not pass its gate")
    promote(registry, warehouse, spec.name, version, reason="bench", actor="bench", run_id="bench")
    return {"tracking_uri": registry.tracking_uri, "version": version}


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (VmHWM, summed)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, AttributeError, ProcessLookupError):
            continue
    return total / 1024


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, seconds: int) -> dict:
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / "invocation.lua"),
            f"{url}/invocations",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    latency = dict(
        re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M)
        and [
            (p, _ms(v, u)) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M)
        ]
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(g) for g in socket.groups()) if socket else 0
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "errors": errors,
    }


def measure(name: str, command: list[str], env: dict, port: int, seconds: int) -> dict:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{name} did not start:\n{process.stderr.read()[-3000:]}")
            time.sleep(0.5)
        run_wrk(url, 3)  # warm-up
        result = run_wrk(url, seconds)
        result["rss_mb"] = peak_rss_mb(process.pid)
        return result
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk (make bench-serve does this)")
    workdir = Path(tempfile.mkdtemp(prefix="serving_bench_"))
    os.environ["MLOPS_DATA_DIR"] = str(workdir)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(f"preparing a champion in {workdir} (not timed)")
    champion = prepare(workdir)
    env = {
        **os.environ,
        "MLOPS_DATA_DIR": str(workdir),
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        # mlflow models serve starts `uvicorn` by name
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    runs = {
        "platform": ([str(BIN / "mlops"), "serve", "--port", "8701"], 8701),
        "mlflow": (
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/flight_delay@champion",
                "--env-manager",
                "local",
                "-p",
                "8702",
            ],
            8702,
        ),
        "floor": (
            [
                str(BIN / "uvicorn"),
                "noop_app:app",
                "--app-dir",
                str(HERE),
                "--port",
                "8703",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            8703,
        ),
    }
    results = {}
    for name, (command, port) in runs.items():
        print(f"loading {name} for {args.seconds} s ...")
        results[name] = measure(name, command, env, port, args.seconds)

    print(
        f"\nchampion flight_delay v{champion['version']}; wrk -t2 -c8 -d{args.seconds}s, "
        "single-row POST /invocations"
    )
    print(
        f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'peak RSS MB':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['rps']:>9,.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
            f"{r['errors']:>7} {r['rss_mb']:>12,.0f}"
        )
    platform = results["platform"]
    print(
        f"\nplatform / mlflow throughput: {platform['rps'] / results['mlflow']['rps']:.1f}x "
        "(target > 20x)"
    )
    print(f"platform / floor throughput:  {platform['rps'] / results['floor']['rps']:.2f}x")
    print(f"platform p99 / mlflow p99:    {platform['p99'] / results['mlflow']['p99']:.3f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
