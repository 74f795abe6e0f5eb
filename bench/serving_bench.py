"""Benchmark: single-row scoring over HTTP, side by side in one run.

Three servers on the same champion model (or none, for the floor), each loaded by wrk (C, from
Debian's packages), first for 20 s with 8 connections sending the same single-row MLflow
scoring request (`bench/invocation.lua`), then for 10 s with 4 connections sending the same
1,000-row `dataframe_split` request (the format MLflow's own client sends):
  platform  `mlops serve` (this project's service, every hardening check on)
  mlflow    `mlflow models serve --env-manager local` on models:/flight_delay@champion (peer)
  floor     a no-op FastAPI endpoint on the same uvicorn stack (bench/noop_app.py): it reads the
            body and answers a constant
Prints requests/s, p50/p99 latency, errors and peak RSS of each, batch rows/s, the ratios to
the floor and the peer, and the machine's load average (`uptime`) before and after: the machine
may be shared, so the ratios within one run are what count.
Targets for the platform: single-row >= 40% of the floor's req/s with p99 < 10 ms and zero
errors; 1,000-row requests >= 200,000 rows/s.

Then, on the platform only, hostile figures: the time and the server's extra memory for a 1 MB
body of records with 16,800 distinct keys (target < 0.5 s, < 50 MB), and single-row latency
while 10,000-row requests are being scored back to back from another process (target p99 <
50 ms), against the same single rows on the idle server (p50, p99, max; p99 busy / idle).
`--hostile-only --repeat N` runs only these, N times; `--workdir DIR` keeps and reuses the
prepared champion. `--challenger` also prepares a challenger (a second version through the
same gate): the platform then shadow-scores every batch with it, as a service beside a
retrained model does, and logs both scores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROW = {
    "carrier": "UA", "origin": "EWR", "dest": "IAH", "manufacturer": "BOEING", "distance": 1400,
    "sched_dep_hour": 5, "sched_arr_hour": 8, "day_of_week": 1, "plane_age": 14, "seats": 149,
    "engines": 2, "temp": 39.0, "dewp": 26.1, "humid": 59.4, "wind_dir": 270, "wind_speed": 10.4,
    "wind_gust": None, "precip": 0, "pressure": 1012.0, "visib": 10,
    "origin_late_1d": 0.18, "origin_late_7d": 0.21, "carrier_late_7d": 0.2, "dest_late_7d": 0.22,
}  # fmt: skip
HERE = Path(__file__).resolve().parent
#: how long 10,000-row requests are sent back to back while single rows are timed
BUSY_SECONDS = 8
BIN = Path(sys.executable).parent


def _ratio(value: float, peer: float, fmt: str) -> str:
    """`value / peer` as `N.Nx`, or a word when the peer completed nothing (mlflow's batch rate
    is 0 when none of its 1,000-row requests finished inside the window on a loaded machine)."""
    return f"{value / peer:{fmt}}x" if peer else "n/a (the peer completed no request)"


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
    ).version
    if not run_gate(spec, features, registry).passed:
        sys.exit("the benchmark's champion did not pass its gate")
    promote(registry, warehouse, spec.name, version, reason="bench", actor="bench", run_id="bench")
    return {"tracking_uri": registry.tracking_uri, "version": version}


def prepare_challenger(workdir: Path) -> str:
    """A second version of flight_delay (other hyperparameters: 150 trees), through the same
    gate, admitted as `challenger`: the server then shadow-scores every batch with it, as a
    production service beside a retrained model does. Returns its version."""
    from mlops_platform.evaluation.run import run_gate
    from mlops_platform.features.build import features_from_warehouse
    from mlops_platform.registry.promotion import admit_challenger
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.specs import load_spec
    from mlops_platform.training.params import Hyperparameters
    from mlops_platform.training.tracking import train_and_register
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    warehouse = DuckDBWarehouse(path=str(workdir / "warehouse.duckdb"))
    spec = load_spec("flight_delay")
    features = features_from_warehouse(warehouse, spec)
    registry = MLflowResource().registry()
    params = {**Hyperparameters().as_dict(), "max_iter": 150, "random_state": 7}
    version = train_and_register(spec, features, registry, warehouse, params, "bench").version
    if not run_gate(spec, features, registry, version).passed:
        sys.exit("the benchmark's challenger did not pass its gate")
    admit_challenger(registry, warehouse, spec.name, version, run_id="bench")
    return version


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


#: rows per request of the batch load
BATCH_ROWS = 1_000


def batch_script(workdir: Path) -> Path:
    """A wrk script sending one 1,000-row dataframe_split request (the same body every time)."""
    body = json.dumps(
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * BATCH_ROWS}}
    )
    script = workdir / "batch.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n"  # a long string: the JSON holds "]]"
    )
    return script


#: CPUs of the servers and of wrk (`--no-pin`: none): on a 2-core machine one each, so the
#: load generator never takes the server's core and every server gets the same one
SERVER_CPUS: str | None = None
WRK_CPUS: str | None = None


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def run_wrk(url: str, seconds: int, script: Path | None = None, connections: int = 8) -> dict:
    done = subprocess.run(
        pinned(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script or HERE / "invocation.lua"),
                f"{url}/invocations",
            ],
            WRK_CPUS,
        ),
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


def uptime() -> str:
    """The machine's load average, as `uptime` prints it."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def single_rows(url: str, stop, out: list[float]) -> None:
    with httpx.Client() as client:
        while not stop():
            started = time.perf_counter()
            reply = client.post(f"{url}/predict", json=ROW)
            out.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 200:
                sys.exit(f"single row answered {reply.status_code}: {reply.text[:200]}")


def large_requests(url: str, results) -> None:
    """Back to back for BUSY_SECONDS (at least 5 requests), so a few hundred single rows are
    timed and their p99 is not just the second-worst of a handful; puts the durations."""
    big = json.dumps(
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * 10_000}}
    ).encode()
    big_s = []
    until = time.monotonic() + BUSY_SECONDS
    with httpx.Client(timeout=120) as client:
        while len(big_s) < 5 or time.monotonic() < until:
            started = time.perf_counter()
            client.post(
                f"{url}/invocations", content=big, headers={"content-type": "application/json"}
            ).raise_for_status()
            big_s.append(time.perf_counter() - started)
    results.put(big_s)


def hostile(url: str, pid: int) -> dict:
    """1 MB of many-keyed records; single rows during 10,000-row requests."""
    records = [{**ROW, **{f"k{i}_{j}": j for j in range(8)}} for i in range(2100)]
    body = json.dumps({"dataframe_records": records}).encode()
    before = rss_mb(pid)
    started = time.perf_counter()
    reply = httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    parse_s = time.perf_counter() - started
    extra_mb = rss_mb(pid) - before
    assert reply.status_code == 200, reply.text[:200]

    idle: list[float] = []
    deadline = time.monotonic() + 3
    single_rows(url, lambda: time.monotonic() > deadline, idle)
    # The 10,000-row requests come from another process: in this one they would compete with
    # the timed single rows for the client's GIL and inflate their latency.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    sender = context.Process(target=large_requests, args=(url, results))
    sender.start()
    busy: list[float] = []
    single_rows(url, lambda: not sender.is_alive(), busy)
    big_s = results.get(timeout=60)
    sender.join()
    return {
        "body_bytes": len(body), "parse_s": parse_s, "extra_mb": extra_mb,
        "idle_p50": _percentile(idle, 0.5), "idle_p99": _percentile(idle, 0.99),
        "busy_p50": _percentile(busy, 0.5), "busy_p99": _percentile(busy, 0.99),
        "busy_max": max(busy), "busy_n": len(busy), "big_s": sorted(big_s)[len(big_s) // 2],
    }  # fmt: skip


def _champion(workdir: Path, keep: bool, challenger: bool = False) -> dict:
    """The prepared champion (kept in `workdir` if `keep`), and a challenger if asked: the
    server serves whatever the registry's aliases say, so a workdir given a challenger shadows
    from then on (MLOPS_SERVING_SHADOW=false turns shadow scoring off)."""
    saved = workdir / "champion.json"
    if keep and saved.exists():
        champion = json.loads(saved.read_text())
    else:
        print(f"preparing a champion in {workdir} (not timed)")
        champion = prepare(workdir)
    if challenger and "challenger" not in champion:
        print(f"preparing a challenger in {workdir} (not timed)")
        champion["challenger"] = prepare_challenger(workdir)
    saved.write_text(json.dumps(champion))
    return champion


def print_hostile(h: dict) -> None:
    print(
        f"hostile (platform): a {h['body_bytes'] / 1e6:.1f} MB body of records with "
        f"{2100 * 8:,} invented keys: {h['parse_s'] * 1000:.0f} ms, "
        f"{h['extra_mb']:+.1f} MB server RSS (targets < 500 ms, < 50 MB)"
    )
    print(
        f"single rows while 10,000-row requests are scored ({h['big_s']:.2f} s each): "
        f"p50 {h['busy_p50']:.1f} ms, p99 {h['busy_p99']:.1f} ms, max {h['busy_max']:.1f} ms "
        f"over {h['busy_n']} requests (target p99 < 50 ms); idle p50 {h['idle_p50']:.1f} ms, "
        f"p99 {h['idle_p99']:.1f} ms; p99 busy / idle: {h['busy_p99'] / h['idle_p99']:.1f}x"
    )


def wait_for_ping(url: str, process: subprocess.Popen, seconds: float) -> bool:
    """True once `url`/ping answers 200; False if `process` exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def measure(
    name: str,
    command: list[str],
    env: dict,
    port: int,
    seconds: int,
    hostile_rounds: int = 0,
    batch: Path | None = None,
) -> dict:
    """wrk figures (`seconds` > 0; the `batch` script for half as long) and, on the platform,
    `hostile_rounds` hostile rounds."""
    process = subprocess.Popen(
        pinned(command, SERVER_CPUS),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # generous: on a shared 2-core machine loading the model and its verification can
        # take minutes
        if not wait_for_ping(url, process, seconds=900):
            process.kill()  # stderr is read to its end: the process must be gone
            sys.exit(f"{name} did not start:\n{process.communicate()[1][-3000:]}")
        result = {}
        if seconds:
            run_wrk(url, 3)  # warm-up
            result = run_wrk(url, seconds)
            if batch is not None:
                run_wrk(url, 2, batch, connections=4)  # warm-up
                result["batch"] = run_wrk(url, max(1, seconds // 2), batch, connections=4)
            result["rss_mb"] = peak_rss_mb(process.pid)
        result["hostile"] = [hostile(url, process.pid) for _ in range(hostile_rounds)]
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
    parser.add_argument(
        "--hostile-only",
        action="store_true",
        help="only the platform's hostile figures (no wrk runs), `--repeat` times",
    )
    parser.add_argument("--repeat", type=int, default=1, help="hostile rounds (--hostile-only)")
    parser.add_argument(
        "--workdir", help="keep the prepared champion here and reuse it on the next run"
    )
    parser.add_argument(
        "--port", type=int, default=8701, help="platform's port; mlflow +1, the floor +2"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the servers and wrk to CPUs"
    )
    parser.add_argument(
        "--challenger",
        action="store_true",
        help="the platform also shadow-scores every batch with a challenger (as in production)",
    )
    args = parser.parse_args()
    global SERVER_CPUS, WRK_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2 and shutil.which("taskset"):
        half = len(cpus) // 2
        SERVER_CPUS = ",".join(map(str, cpus[:half]))
        WRK_CPUS = ",".join(map(str, cpus[half:]))
    if not args.hostile_only and not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk (make bench-serve does this)")
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="serving_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLOPS_DATA_DIR"] = str(workdir)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    champion = _champion(workdir, keep, args.challenger)
    env = {
        **os.environ,
        "MLOPS_DATA_DIR": str(workdir),
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        # the 10,000-row requests of the hostile figures (split format) are ~1.7 MB
        "MLOPS_SERVING_MAX_BODY_BYTES": "4000000",
        # mlflow models serve starts `uvicorn` by name
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    runs = {
        "platform": ([str(BIN / "mlops"), "serve", "--port", str(args.port)], args.port),
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
                str(args.port + 1),
            ],
            args.port + 1,
        ),
        "floor": (
            [
                str(BIN / "uvicorn"),
                "noop_app:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(args.port + 2),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            args.port + 2,
        ),
    }
    if args.hostile_only:
        command, port = runs["platform"]
        for h in measure("platform", command, env, port, 0, args.repeat)["hostile"]:
            print_hostile(h)
        return
    load_before = uptime()
    batch = batch_script(workdir)
    results = {}
    for name, (command, port) in runs.items():
        print(f"loading {name} for {args.seconds} s, then {args.seconds // 2} s of batches ...")
        rounds = 1 if name == "platform" else 0
        results[name] = measure(name, command, env, port, args.seconds, rounds, batch)
    load_after = uptime()

    print(f"\nload before: {load_before}\nload after:  {load_after}")
    print(
        f"servers pinned to CPU {SERVER_CPUS}, wrk to CPU {WRK_CPUS}"
        if SERVER_CPUS
        else "not pinned to CPUs"
    )
    shadowing = env.get("MLOPS_SERVING_SHADOW", "true").lower() == "true"
    print(
        f"\nchampion flight_delay v{champion['version']}"
        + (
            f", challenger v{champion['challenger']} "
            + ("shadowing" if shadowing else "(no shadow)")
            if "challenger" in champion
            else ""
        )
        + f"; wrk -t2 -c8 -d{args.seconds}s, "
        f"single-row POST /invocations; then wrk -t2 -c4 -d{max(1, args.seconds // 2)}s, "
        f"{BATCH_ROWS:,}-row dataframe_split requests"
    )
    print(
        f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'batch rows/s':>13} {'batch p99 ms':>13} {'errors':>7} {'peak RSS MB':>12}"
    )
    for name, r in results.items():
        b = r["batch"]
        print(
            f"{name:<10} {r['rps']:>9,.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>7} "
            f"{b['rps'] * BATCH_ROWS:>13,.0f} {b['p99']:>13.2f} {b['errors']:>7} "
            f"{r['rss_mb']:>12,.0f}"
        )
    platform, floor, mlflow = results["platform"], results["floor"], results["mlflow"]
    batch_rows = platform["batch"]["rps"] * BATCH_ROWS
    print(
        f"\nplatform / floor:  single-row {platform['rps'] / floor['rps']:.2f}x (target >= 0.40), "
        f"batch {platform['batch']['rps'] / floor['batch']['rps']:.2f}x"
    )
    print(
        f"platform / mlflow: single-row {_ratio(platform['rps'], mlflow['rps'], '.1f')}, "
        f"batch {_ratio(platform['batch']['rps'], mlflow['batch']['rps'], '.1f')}; "
        f"p99 {platform['p99'] / mlflow['p99']:.3f} of mlflow's"
    )
    print(
        f"platform single-row p99 {platform['p99']:.2f} ms (target < 10), "
        f"errors {platform['errors'] + platform['batch']['errors']} (target 0); "
        f"batch {batch_rows:,.0f} rows/s (target >= 200,000)"
    )
    print()
    print_hostile(platform["hostile"][0])
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
