"""Server CPU per request: `mlops serve` on a prepared champion, loaded by wrk, CPU from /proc.

Wall-clock throughput on a shared machine says little; the server process's CPU time (user +
system, all its threads: event loop, parse pool, model threads, log writer) per request is what
bounds throughput on one core. Loads the server with wrk (C: it drives thousands of requests a
second even on a busy machine, where a Python client managed ~30), first `--seconds` of the
single-row request `serving_bench` sends (`invocation.lua`), then of its 1,000-row
`dataframe_split` request, after a warm-up each, and prints the server's CPU milliseconds per
request and how they split over its threads (named by `py-spy dump`: the event loop
`MainThread`, the parse pool, the model threads, the log writers).

    uv run python bench/serving_cpu.py --workdir /tmp/bench   # a champion serving_bench kept
    uv run python bench/serving_cpu.py --workdir /tmp/bench --py-spy /tmp/batch.txt

`--challenger` prepares a challenger in the workdir (a production service shadows one: every
batch is scored again by it, on the shadow thread, and both scores logged); `--no-shadow` serves
the same registry with shadow scoring off, for the difference.

`--py-spy FILE` records the server (py-spy, installed separately; native frames included) while
1,000-row requests are sent (`--py-spy-single FILE`: single rows); a `.txt` name gives py-spy's
raw (collapsed stacks) format, anything else a flame graph. `--cpu`/`--wrk-cpu` pin the server
and wrk (taskset).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from serving_bench import BIN, HERE, _champion, batch_script, pinned, wait_for_ping

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each of a process's threads, by native thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def py_spy() -> str:
    """py-spy on the PATH, or the one installed in this venv."""
    return shutil.which("py-spy") or str(BIN / "py-spy")


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name (a pool's numbered threads as one, `name_*`),
    from `py-spy dump`; empty without py-spy."""
    if not Path(py_spy()).exists():
        return {}
    dump = subprocess.run([py_spy(), "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {
        int(tid): re.sub(r"_\d+$", "_*", name)
        for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.M)
    }


def wrk(url: str, script: Path, seconds: int, connections: int, cpus: str | None) -> int:
    """Requests wrk completed (every one answered 2xx, or this exits)."""
    done = subprocess.run(
        pinned(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
             f"{url}/invocations"],
            cpus,
        ),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in done or "Socket errors" in done:
        sys.exit(f"wrk saw errors:\n{done}")
    return int(re.search(r"(\d+) requests in", done).group(1))


def measure(url: str, pid: int, script: Path, args, spy_file: str | None) -> None:
    """Prints the server's CPU ms per request, by thread, over `args.seconds` of wrk load."""
    wrk(url, script, 2, args.connections, args.wrk_cpu)  # warm-up
    names = thread_names(pid)  # after the warm-up: pools start their threads on demand
    spy = None
    if spy_file:
        fmt = "raw" if spy_file.endswith(".txt") else "flamegraph"
        spy = subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--threads", "--native", "--format", fmt,
             "--output", spy_file, "--rate", "250", "--duration", str(args.seconds)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    threads, before = thread_cpu(pid), cpu_seconds(pid)
    requests = wrk(url, script, args.seconds, args.connections, args.wrk_cpu)
    total = (cpu_seconds(pid) - before) * 1000 / requests
    if spy is not None:
        spy.wait(timeout=120)
    by_name: dict[str, float] = {}
    for tid, seconds in thread_cpu(pid).items():
        name = names.get(tid, "other")
        by_name[name] = by_name.get(name, 0.0) + (seconds - threads.get(tid, 0.0))
    shares = ", ".join(
        f"{name} {seconds * 1000 / requests:.3f}"
        for name, seconds in sorted(by_name.items(), key=lambda item: -item[1])
        if seconds > 0
    )
    rows = 1 if script.name == "invocation.lua" else 1000
    print(
        f"{'single row' if rows == 1 else '1,000 rows'}: {total:.3f} ms server CPU per request "
        f"({1000 / total * rows:,.0f} rows per CPU second; {requests / args.seconds:,.0f} req/s "
        f"wall)\n  by thread (ms per request): {shares}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port", type=int, default=18200)
    parser.add_argument("--seconds", type=int, default=10, help="of each load (after warm-up)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--py-spy", help="record the 1,000-row phase into this file")
    parser.add_argument("--py-spy-single", help="record the single-row phase into this file")
    parser.add_argument(
        "--challenger",
        action="store_true",
        help="prepare a challenger in the workdir (kept: from then on the server shadows)",
    )
    parser.add_argument(
        "--no-shadow", action="store_true", help="serve with MLOPS_SERVING_SHADOW=false"
    )
    parser.add_argument("--cpu", help="pin the server to these CPUs (taskset)")
    parser.add_argument("--wrk-cpu", help="pin wrk to these CPUs (taskset)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk (make bench-serve does this)")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLOPS_DATA_DIR"] = str(workdir)
    champion = _champion(workdir, True, args.challenger)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "MLOPS_SERVING_MAX_BODY_BYTES": "4000000",
    }
    if args.no_shadow:
        env["MLOPS_SERVING_SHADOW"] = "false"
    shadow = champion.get("challenger")
    shadowing = env.get("MLOPS_SERVING_SHADOW", "true").lower() == "true"
    print(
        f"champion v{champion['version']}; "
        + (f"challenger v{shadow} " if shadow else "no challenger")
        + ("" if not shadow else "shadowing" if shadowing else "(shadow scoring off)")
    )
    command = pinned([str(BIN / "mlops"), "serve", "--port", str(args.port)], args.cpu)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        if not wait_for_ping(url, server, seconds=900):
            sys.exit("the server did not start")
        measure(url, server.pid, HERE / "invocation.lua", args, args.py_spy_single)
        measure(url, server.pid, batch_script(workdir), args, args.py_spy)
        status = Path(f"/proc/{server.pid}/status").read_text()
        print(f"peak RSS {int(status.split('VmHWM:')[1].split()[0]) / 1024:.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
